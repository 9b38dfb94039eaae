"""Magnitude pruning of the update: top-k without error feedback."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.compression import TransformConfig
from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.pipeline.transforms.topk import TopK


@TRANSFORM_CONFIGS.add
class PruneTransform(TransformConfig):
    """Magnitude pruning of the update: drop the smallest ``amount`` of each tensor's entries for good
    (top-k without error feedback).

    Example:
        >>> PruneTransform(amount=0.9).build().describe()
        'prune(amount=0.9)'
    """

    name: Literal["prune"] = "prune"
    amount: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of each tensor's entries dropped")

    def build(self) -> MagnitudePrune:
        return MagnitudePrune(self.amount)


class MagnitudePrune(TopK):
    """Magnitude pruning of the update: top-k without error feedback (what is pruned is gone)."""

    feedback = False

    def __init__(self, amount: float) -> None:
        super().__init__(1.0 - amount)
        self.amount = amount

    def describe(self) -> str:
        return f"prune(amount={self.amount:g})"
