"""The ``peft`` section of sparse, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class SparseMethod(MethodConfig):
    """Sparse fine-tuning: a fixed mask of weight entries, agreed by all clients before round 1, trains;
    only the masked entries travel. ``density`` is the fraction of entries kept in each weight matrix."""

    method: Literal["sparse"] = "sparse"
    density: float = Field(0.01, gt=0.0, le=1.0)
    selection: Literal["magnitude", "random", "fisher"] = Field(
        "magnitude", description="largest |w|, uniformly at random, or largest diagonal Fisher information"
    )
    fisher_examples: int = Field(32, ge=1, description="fisher: examples per client whose squared gradients are summed")
    fisher_clients: int | None = Field(
        10, ge=1, description="fisher: how many clients (a seeded sample) score the weights; None: all"
    )
    include_embeddings: bool = False
