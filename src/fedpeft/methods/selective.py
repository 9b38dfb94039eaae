"""Selective PEFT: train a chosen subset of existing weights (plus the new task head)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fedpeft.errors import ModelError
from fedpeft.methods.own_format import load_own, save_trainable
from fedpeft.methods.registry import MethodSpec, register
from fedpeft.model.anatomy import head_parameters

NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)  # BatchNorm: the affine part only; statistics stay
Selector = Callable[[nn.Module, object], set[str]]


def select(model: nn.Module, chosen: set[str]) -> nn.Module:
    chosen = chosen | head_parameters(model)
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
    return model


def selective_method(name: str, selector: Selector, missing: str) -> MethodSpec:
    """Register a selective method: ``selector(model, cfg)`` names the base parameters to train besides the
    head."""

    def apply(model: nn.Module, cfg: object, task: str) -> nn.Module:
        chosen = selector(model, cfg)
        if not chosen and not (name == "head" and head_parameters(model)):
            raise ModelError(f"{name} does not apply to this model: {missing}; pick another peft.method")
        return select(model, chosen)

    return register(MethodSpec(name, "selective", apply, save_trainable, load_own))


def biases(model: nn.Module, cfg: object = None) -> set[str]:
    head = head_parameters(model)
    return {n for n, _ in model.named_parameters() if n.endswith(".bias") and n not in head}


def norms(model: nn.Module, cfg: object = None) -> set[str]:
    out = set()
    for mname, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, NORMS) or kind.endswith(("LayerNorm", "RMSNorm")):
            out |= {f"{mname}.{p}" for p, _ in module.named_parameters(recurse=False)}
    return out
