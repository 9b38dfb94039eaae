"""Read and write the trainable tensors of a model: the only state that travels between client and server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

TensorDict = dict[str, torch.Tensor]


class TrainableState:
    """A handle on a model's trainable parameters, by name, for fast swapping in and out.

    Example:
        >>> m = nn.Linear(2, 1); m.bias.requires_grad_(False)
        Parameter containing:...
        >>> ts = TrainableState(m); list(ts.names)
        ['weight']
        >>> ts.load({"weight": torch.zeros(1, 2)}); float(m.weight.abs().sum())
        0.0
    """

    def __init__(self, model: nn.Module) -> None:
        self.params: dict[str, nn.Parameter] = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not self.params:
            raise ValueError("the model has no trainable parameters")

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def numel(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def snapshot(self) -> TensorDict:
        """Detached copies of the current trainable tensors, on the CPU (where payloads are encoded)."""
        return {n: p.detach().to("cpu", copy=True) for n, p in self.params.items()}

    def load(self, state: TensorDict) -> None:
        """Copy ``state`` (all or some of the trainable tensors, same shapes) into the model in place."""
        load_into(self.params, state)

    def spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {n: (tuple(p.shape), p.dtype) for n, p in self.params.items()}


@torch.no_grad()
def load_into(params: Mapping[str, torch.Tensor], state: TensorDict) -> None:
    """Copy ``state`` into the same-named tensors of ``params`` in place (shapes must match)."""
    for n, t in state.items():
        p = params.get(n)
        if p is None:
            raise KeyError(f"{n!r} is not a trainable tensor of this model")
        if p.shape != t.shape:
            raise ValueError(f"{n}: shape {tuple(t.shape)} does not match the model's {tuple(p.shape)}")
        p.copy_(t)


def nbytes(tensors: Mapping[Any, torch.Tensor]) -> int:
    """Bytes held by the tensors' elements.

    Example:
        >>> nbytes({"w": torch.zeros(2, 3)})
        24
    """
    return sum(t.numel() * t.element_size() for t in tensors.values())


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
