"""Selective PEFT: train a chosen subset of existing weights (plus the new task head)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from fedpeft.config.methods import MethodConfig
from fedpeft.errors import ModelError
from fedpeft.methods.own_format import load_own, save_trainable
from fedpeft.methods.registry import MethodSpec, register
from fedpeft.model.anatomy import head_parameters

C = TypeVar("C", bound=MethodConfig)


def select(model: nn.Module, chosen: set[str]) -> nn.Module:
    chosen = chosen | head_parameters(model)
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
    return model


def selective_method(name: str, selector: Callable[[nn.Module, C], set[str]], missing: str) -> MethodSpec[C]:
    """Register a selective method: ``selector(model, cfg)`` names the base parameters to train besides the
    head (an empty choice is refused with ``missing`` as the reason, unless the model has a head to train
    and the method is head-only)."""

    def apply(model: nn.Module, cfg: C, task: str) -> nn.Module:
        chosen = selector(model, cfg)
        if not chosen and not (name == "head" and head_parameters(model)):
            raise ModelError(f"{name} does not apply to this model: {missing}; pick another peft.method")
        return select(model, chosen)

    return register(MethodSpec(name, "selective", apply, save_trainable, load_own))
