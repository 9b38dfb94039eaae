"""Random-k sparsification: a seeded random fraction of each tensor; only the values travel."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from fedpeft.config.compression import TransformConfig
from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.model.state import TensorDict
from fedpeft.pipeline.transforms.base import EncodeContext, PerTensor, Shape, Spec, kept, name_key


@TRANSFORM_CONFIGS.add
class RandomKTransform(TransformConfig):
    """Keep a random fraction of each tensor; the indices come from a seed in the header, so only the
    values travel. ``rescale`` multiplies by 1/density, which makes it unbiased (for use without error
    feedback).

    Example:
        >>> RandomKTransform(density=0.5, rescale=True).build().describe()
        'randk(density=0.5, rescale=True)'
    """

    name: Literal["randk"] = "randk"
    density: float = Field(0.1, gt=0.0, le=1.0)
    rescale: bool = False

    def build(self) -> RandomK:
        return RandomK(self.density, self.rescale)


class RandomK(PerTensor):
    """A random ``density`` fraction of each tensor. The positions come from the header's seed and the
    tensor's name, so only the values travel; ``rescale`` multiplies them by n/k (unbiased)."""

    feedback = True

    def __init__(self, density: float, rescale: bool) -> None:
        self.density, self.rescale = density, rescale

    def describe(self) -> str:
        return f"randk(density={self.density:g}, rescale={self.rescale})"

    def positions(self, name: str, n: int, seed: int) -> torch.Tensor:
        rng = np.random.default_rng(name_key(seed, name))
        return torch.from_numpy(np.sort(rng.choice(n, size=kept(self.density, n), replace=False)))

    def part_spec(self, shape: Shape, dtype: torch.dtype) -> Spec:
        return {"v": ((kept(self.density, math.prod(shape)),), dtype)}

    def encode_one(self, name: str, x: torch.Tensor, ctx: EncodeContext) -> TensorDict:
        flat = x.reshape(-1)
        idx = self.positions(name, flat.numel(), ctx.seed)
        values = flat[idx]
        return {"v": values * (flat.numel() / idx.numel()) if self.rescale else values}

    def decode_one(self, name: str, sub: TensorDict, shape: Shape, seed: int) -> torch.Tensor:
        n = math.prod(shape)
        dense = torch.zeros(n, dtype=sub["v"].dtype)
        dense[self.positions(name, n, seed)] = sub["v"]
        return dense
