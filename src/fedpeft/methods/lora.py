"""LoRA (and its rsLoRA / DoRA flags) through the peft library; saved in the Hugging Face PEFT format."""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from torch import nn

from fedpeft.config.schema import LoraMethod
from fedpeft.errors import ModelError
from fedpeft.methods.registry import MethodSpec, register

PEFT_TASKS = {"sequence_classification": TaskType.SEQ_CLS, "causal_lm": TaskType.CAUSAL_LM}


def apply_lora(model: nn.Module, cfg: object, task: str) -> nn.Module:
    assert isinstance(cfg, LoraMethod)
    peft_cfg = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        use_rslora=cfg.use_rslora,
        use_dora=cfg.use_dora,
        task_type=PEFT_TASKS[task],
    )
    try:
        return get_peft_model(model, peft_cfg)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ModelError(
            f"LoRA could not be applied: {exc}. Set peft.target_modules to some of this model's linear "
            f"layers: {names}, or 'all-linear'"
        ) from None


def save_peft(model: nn.Module, folder: Path) -> None:
    model.save_pretrained(str(folder))  # type: ignore[operator]


def load_peft(base: nn.Module, folder: Path) -> nn.Module:
    return PeftModel.from_pretrained(base, str(folder))


LORA = register(MethodSpec("lora", "reparameterised", apply_lora, save_peft, load_peft))
