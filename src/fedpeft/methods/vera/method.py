"""VeRA (Kopiczko et al., 2024) through peft. The random projections come from a fixed PRNG key, so every
client holds the same frozen matrices and only the scaling vectors (and the head) travel."""

from __future__ import annotations

from peft import VeraConfig
from torch import nn

from fedpeft.errors import ModelError
from fedpeft.methods.peft_common import PEFT_TASKS, load_peft, save_peft, wrap
from fedpeft.methods.registry import MethodSpec, register
from fedpeft.methods.vera.config import VeraMethod


def apply_vera(model: nn.Module, cfg: VeraMethod, task: str) -> nn.Module:
    if task == "image_classification":
        raise ModelError("VeRA (peft) adapts linear layers only, and a CNN's layers are convolutions; pick lora")
    peft_cfg = VeraConfig(
        r=cfg.r,
        target_modules=cfg.target_modules,
        vera_dropout=cfg.dropout,
        d_initial=cfg.d_initial,
        task_type=PEFT_TASKS[task],
    )
    return wrap(model, peft_cfg, "VeRA")


VERA = register(MethodSpec("vera", "reparameterised", apply_vera, save_peft, load_peft))
