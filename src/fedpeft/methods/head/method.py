"""Head-only (linear probe): the base stays frozen; only the new task head trains."""

from __future__ import annotations

from torch import nn

from fedpeft.methods.head.config import HeadMethod
from fedpeft.methods.selective import selective_method


def no_base_parameters(model: nn.Module, cfg: HeadMethod) -> set[str]:
    return set()


HEAD = selective_method(
    "head",
    no_base_parameters,
    "it has no new task head (a causal LM's output layer is its tied input embedding)",
)
