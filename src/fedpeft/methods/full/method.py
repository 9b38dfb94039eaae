"""Full fine-tuning: every parameter trains and travels. The baseline every comparison needs."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_model, save_model
from torch import nn

from fedpeft.methods.full.config import FullMethod
from fedpeft.methods.registry import MethodSpec, register

WEIGHTS = "model.safetensors"


def apply_full(model: nn.Module, cfg: FullMethod, task: str) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def save_full(model: nn.Module, folder: Path, cfg: FullMethod | None = None, task: str = "") -> None:
    """All weights as one safetensors file (works for any module, tied weights included)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / WEIGHTS))


def load_full(base: nn.Module, folder: Path) -> nn.Module:
    """Load saved weights into a freshly built model of the same architecture."""
    load_model(base, str(folder / WEIGHTS))
    return base


FULL = register(MethodSpec("full", "baseline", apply_full, save_full, load_full))
