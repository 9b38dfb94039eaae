"""The PEFT method registry: each method is one module that registers a MethodSpec under its name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

from fedpeft.registry import Registry

Family = Literal["additive", "selective", "reparameterised", "baseline"]


@dataclass(frozen=True)
class MethodSpec:
    """How to wrap a base model for a method, and how to save the result.

    ``apply(model, cfg, task)`` returns the model with exactly the method's parameters trainable.
    ``save(model, folder)`` writes the adapter so that ``load(base_model, folder)`` reproduces it.
    """

    name: str
    family: Family
    apply: Callable[[nn.Module, object, str], nn.Module]
    save: Callable[[nn.Module, Path], None]
    load: Callable[[nn.Module, Path], nn.Module]


METHODS: Registry[MethodSpec] = Registry("PEFT method")


def register(spec: MethodSpec) -> MethodSpec:
    METHODS.register(spec.name)(spec)
    return spec
