"""Prefix tuning (Li and Liang, 2021) through peft: trained key/value prefixes for every attention layer."""

from __future__ import annotations

from peft import PrefixTuningConfig
from torch import nn

from fedpeft.methods.peft_common import PEFT_TASKS, load_peft, refuse_without_tokens, save_peft, wrap
from fedpeft.methods.prefix.config import PrefixTuningMethod
from fedpeft.methods.registry import MethodSpec, register


def apply_prefix(model: nn.Module, cfg: PrefixTuningMethod, task: str) -> nn.Module:
    refuse_without_tokens(task, "prefix tuning")
    peft_cfg = PrefixTuningConfig(
        num_virtual_tokens=cfg.num_virtual_tokens,
        prefix_projection=cfg.projection,
        encoder_hidden_size=cfg.encoder_hidden_size or int(getattr(model.config, "hidden_size", 0)),
        task_type=PEFT_TASKS[task],
    )
    return wrap(model, peft_cfg, "prefix tuning")


PREFIX = register(MethodSpec("prefix", "additive", apply_prefix, save_peft, load_peft))
