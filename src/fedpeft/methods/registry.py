"""The PEFT method registry: each method is one folder that registers a MethodSpec under its name."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import torch
from torch import nn

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS
from fedpeft.registry import Registry

Batch = Mapping[str, torch.Tensor]
Family = Literal["additive", "selective", "reparameterised", "baseline"]
C = TypeVar("C", bound=MethodConfig)


@dataclass(frozen=True)
class MethodSpec(Generic[C]):
    """How to wrap a base model for a method, and how to save the result; ``C`` is the method's config class.

    ``apply(model, cfg, task)`` returns the model with exactly the method's parameters trainable.
    ``save(model, folder, cfg, task)`` writes the adapter so that ``load(base_model, folder)`` reproduces it.
    ``calibrate(model, cfg, task, client_batches)``, for methods that choose what to train from the clients'
    data (Fisher masks), replaces ``apply`` when a run is built; it also returns what that choice cost.

    Example:
        >>> from fedpeft.methods.full.method import FullMethod, apply_full, load_full, save_full
        >>> spec = MethodSpec("full", "baseline", apply_full, save_full, load_full)
        >>> spec.apply(nn.Linear(2, 2), FullMethod(), "sequence_classification").weight.requires_grad
        True
    """

    name: str
    family: Family
    apply: Callable[[nn.Module, C, str], nn.Module]
    save: Callable[[nn.Module, Path, C, str], None]
    load: Callable[[nn.Module, Path], nn.Module]
    summary: str = ""  # one line for listings; defaults to the first sentence of the config's docstring
    calibrate: Callable[[nn.Module, C, str, Iterable[Iterable[Batch]]], tuple[nn.Module, dict[str, Any]]] | None = None


METHODS: Registry[MethodSpec[Any]] = Registry("PEFT method", packages=("fedpeft.methods",))


def register(spec: MethodSpec[C]) -> MethodSpec[C]:
    """Register a method; its config class must be registered (``METHOD_CONFIGS.add``) under the same name."""
    if spec.name not in METHOD_CONFIGS:
        raise ValueError(f"PEFT method {spec.name!r}: register its config class first (METHOD_CONFIGS.add)")
    METHODS.register(spec.name)(spec)
    return spec
