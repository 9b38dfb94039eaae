"""Soft prompt tuning (Lester et al., 2021) through peft: virtual token embeddings prepended to the input."""

from __future__ import annotations

from peft import PromptTuningConfig, PromptTuningInit
from torch import nn

from fedpeft.methods.peft_common import PEFT_TASKS, load_peft, refuse_without_tokens, save_peft, wrap
from fedpeft.methods.prompt.config import PromptTuningMethod
from fedpeft.methods.registry import MethodSpec, register


def apply_prompt(model: nn.Module, cfg: PromptTuningMethod, task: str) -> nn.Module:
    refuse_without_tokens(task, "prompt tuning")
    init = PromptTuningInit.SAMPLE_VOCAB if cfg.init == "sample_vocab" else PromptTuningInit.RANDOM
    peft_cfg = PromptTuningConfig(
        num_virtual_tokens=cfg.num_virtual_tokens, prompt_tuning_init=init, task_type=PEFT_TASKS[task]
    )
    return wrap(model, peft_cfg, "prompt tuning")


PROMPT = register(MethodSpec("prompt", "additive", apply_prompt, save_peft, load_peft))
