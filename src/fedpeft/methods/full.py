"""Full fine-tuning: every parameter trains and travels. The baseline every comparison needs."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from fedpeft.methods.registry import MethodSpec, register


def apply_full(model: nn.Module, cfg: object, task: str) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def save_full(model: nn.Module, folder: Path) -> None:
    model.save_pretrained(str(folder))  # type: ignore[operator]


def load_full(base: nn.Module, folder: Path) -> nn.Module:
    return type(base).from_pretrained(str(folder))  # type: ignore[attr-defined,no-any-return]


FULL = register(MethodSpec("full", "baseline", apply_full, save_full, load_full))
