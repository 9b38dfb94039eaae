"""What every peft-backed method shares: task types, wrapping with a clear error, HF PEFT format I/O."""

from __future__ import annotations

from pathlib import Path

from peft import PeftConfig, PeftModel, TaskType, get_peft_model
from torch import nn

from fedpeft.errors import ModelError

PEFT_TASKS = {"sequence_classification": TaskType.SEQ_CLS, "causal_lm": TaskType.CAUSAL_LM}


def wrap(model: nn.Module, peft_cfg: PeftConfig, label: str) -> nn.Module:
    """get_peft_model, turning peft's ValueError into a message that lists the adaptable layers."""
    try:
        return get_peft_model(model, peft_cfg)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ModelError(
            f"{label} could not be applied: {exc}. Set peft.target_modules to some of this model's linear "
            f"layers: {names}"
        ) from None


def save_peft(model: nn.Module, folder: Path) -> None:
    model.save_pretrained(str(folder))  # type: ignore[operator]


def load_peft(base: nn.Module, folder: Path) -> nn.Module:
    return PeftModel.from_pretrained(base, str(folder))
