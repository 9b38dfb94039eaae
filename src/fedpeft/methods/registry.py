"""The PEFT method registry: each method is one module that registers a MethodSpec under its name."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fedpeft.registry import Registry

Batch = Mapping[str, torch.Tensor]
Family = Literal["additive", "selective", "reparameterised", "baseline"]


@dataclass(frozen=True)
class MethodSpec:
    """How to wrap a base model for a method, and how to save the result.

    ``apply(model, cfg, task)`` returns the model with exactly the method's parameters trainable.
    ``save(model, folder, cfg, task)`` writes the adapter so that ``load(base_model, folder)`` reproduces it.
    ``calibrate(model, cfg, task, client_batches)``, for methods that choose what to train from the clients'
    data (Fisher masks), replaces ``apply`` when a run is built; it also returns what that choice cost.
    """

    name: str
    family: Family
    apply: Callable[[nn.Module, object, str], nn.Module]
    save: Callable[[nn.Module, Path, object, str], None]
    load: Callable[[nn.Module, Path], nn.Module]
    summary: str = ""  # one line for listings; defaults to the first sentence of the config's docstring
    calibrate: Callable[[nn.Module, object, str, Iterable[Iterable[Batch]]], tuple[nn.Module, dict]] | None = None


METHODS: Registry[MethodSpec] = Registry("PEFT method")


def register(spec: MethodSpec) -> MethodSpec:
    METHODS.register(spec.name)(spec)
    return spec
