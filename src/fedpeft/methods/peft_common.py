"""What every peft-backed method shares: task types, wrapping with a clear error, HF PEFT format I/O."""

from __future__ import annotations

from pathlib import Path

from peft import PeftConfig, PeftModel, TaskType, get_peft_model
from torch import nn

from fedpeft.config.methods import MethodConfig
from fedpeft.errors import ModelError

ADAPTABLE = (nn.Linear, nn.Conv2d)

PEFT_TASKS: dict[str, TaskType | None] = {
    "sequence_classification": TaskType.SEQ_CLS,
    "causal_lm": TaskType.CAUSAL_LM,
    "image_classification": None,  # peft has no image task type: the new head is saved as a module to save
}


def wrap(model: nn.Module, peft_cfg: PeftConfig, label: str) -> nn.Module:
    """get_peft_model, turning peft's ValueError into a message that lists the adaptable layers."""
    if peft_cfg.task_type is None and hasattr(model, "classifier"):
        setattr(peft_cfg, "modules_to_save", ["classifier"])
    try:
        return get_peft_model(model, peft_cfg)
    except (ValueError, TypeError) as exc:
        names = sorted(
            {
                n if n.rsplit(".", 1)[-1].isdigit() else n.rsplit(".", 1)[-1]
                for n, m in model.named_modules()
                if isinstance(m, ADAPTABLE)
            }
        )[:20]
        raise ModelError(
            f"{label} could not be applied: {exc}. Choose its target modules among this model's layers: {names}"
        ) from None


def save_peft(model: nn.Module, folder: Path, cfg: MethodConfig | None = None, task: str = "") -> None:
    model.save_pretrained(str(folder))  # type: ignore[operator]


def load_peft(base: nn.Module, folder: Path) -> nn.Module:
    return PeftModel.from_pretrained(base, str(folder))


def default_targets(model: nn.Module, task: str, configured: list[str] | str | None) -> list[str] | str | None:
    """The configured target modules, or for a CNN its 1x1 convolutions (peft has no default there)."""
    if configured is None and task == "image_classification":
        from fedpeft.model.mobilenet import pointwise_convs

        return pointwise_convs(model)
    return configured


def refuse_without_tokens(task: str, label: str) -> None:
    if task == "image_classification":
        raise ModelError(f"{label} needs token embeddings; an image model has none. Pick another peft.method")
