"""LoRA (and its rsLoRA / DoRA flags) through the peft library; saved in the Hugging Face PEFT format."""

from __future__ import annotations

from peft import LoraConfig
from torch import nn

from fedpeft.methods.lora.config import LoraMethod
from fedpeft.methods.peft_common import PEFT_TASKS, default_targets, load_peft, save_peft, wrap
from fedpeft.methods.registry import MethodSpec, register


def apply_lora(model: nn.Module, cfg: LoraMethod, task: str) -> nn.Module:
    peft_cfg = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=default_targets(model, task, cfg.target_modules),
        use_rslora=cfg.use_rslora,
        use_dora=cfg.use_dora,
        layers_to_transform=cfg.layers,
        task_type=PEFT_TASKS[task],
    )
    return wrap(model, peft_cfg, "LoRA")


LORA = register(MethodSpec("lora", "reparameterised", apply_lora, save_peft, load_peft))
