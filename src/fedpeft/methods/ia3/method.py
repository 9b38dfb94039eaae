"""(IA)^3 (Liu et al., 2022) through peft; saved in the Hugging Face PEFT format."""

from __future__ import annotations

from peft import IA3Config
from torch import nn

from fedpeft.methods.ia3.config import IA3Method
from fedpeft.methods.peft_common import PEFT_TASKS, default_targets, load_peft, save_peft, wrap
from fedpeft.methods.registry import MethodSpec, register


def apply_ia3(model: nn.Module, cfg: IA3Method, task: str) -> nn.Module:
    targets = default_targets(model, task, cfg.target_modules)
    feedforward = cfg.feedforward_modules
    if feedforward is None and targets is not cfg.target_modules:
        feedforward = []  # a CNN's 1x1 convs: scale their outputs
    peft_cfg = IA3Config(
        target_modules=targets,
        feedforward_modules=feedforward,
        task_type=PEFT_TASKS[task],
    )
    return wrap(model, peft_cfg, "IA3")


IA3 = register(MethodSpec("ia3", "additive", apply_ia3, save_peft, load_peft))
