"""Top-k sparsification: the largest-magnitude fraction of each tensor, with error feedback by default."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from fedpeft.config.compression import TransformConfig
from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.errors import InvalidUpdate
from fedpeft.model.state import TensorDict
from fedpeft.pipeline.transforms.base import EncodeContext, PerTensor, Shape, Spec, index_spec, kept


@TRANSFORM_CONFIGS.add
class TopKTransform(TransformConfig):
    """Keep the largest-magnitude fraction of each tensor (values plus a bitmask or index list, whichever is
    smaller); with error feedback, what was not sent is added to the client's next update.

    Example:
        >>> TopKTransform(density=0.25).build().feedback
        True
    """

    name: Literal["topk"] = "topk"
    density: float = Field(0.1, gt=0.0, le=1.0, description="fraction of each tensor's entries kept")

    def build(self) -> TopK:
        return TopK(self.density)


class TopK(PerTensor):
    """The ``density`` fraction of largest-magnitude entries of each tensor, as values plus positions."""

    feedback = True

    def __init__(self, density: float) -> None:
        self.density = density

    def describe(self) -> str:
        return f"topk(density={self.density:g})"

    def part_spec(self, shape: Shape, dtype: torch.dtype) -> Spec:
        n = math.prod(shape)
        k = kept(self.density, n)
        suffix, spec = index_spec(n, k)
        return {"v": ((k,), dtype), suffix: spec}

    def encode_one(self, name: str, x: torch.Tensor, ctx: EncodeContext) -> TensorDict:
        flat = x.reshape(-1)
        n = flat.numel()
        k = kept(self.density, n)
        idx = flat.abs().float().topk(k, sorted=False).indices.sort().values
        suffix, (shape, dtype) = index_spec(n, k)
        if suffix == "m":
            mask = np.zeros(n, dtype=bool)
            mask[idx.numpy()] = True
            positions = torch.from_numpy(np.packbits(mask, bitorder="little"))
        else:
            positions = idx.to(dtype)
        return {"v": flat[idx], suffix: positions}

    def decode_one(self, name: str, sub: TensorDict, shape: Shape, seed: int) -> torch.Tensor:
        n, values = math.prod(shape), sub["v"]
        if "m" in sub:
            mask = np.unpackbits(sub["m"].numpy(), bitorder="little")
            if mask[n:].any() or int(mask.sum()) != values.numel():
                raise InvalidUpdate(f"{name}: the bitmask marks {int(mask.sum())} entries for {values.numel()} values")
            idx = torch.from_numpy(np.flatnonzero(mask[:n]))
        else:
            idx = sub["i"].long()
            if idx.numel() and (idx[0] < 0 or idx[-1] >= n or bool((idx[1:] <= idx[:-1]).any())):
                raise InvalidUpdate(f"{name}: indices must be increasing and within [0, {n})")
        dense = torch.zeros(n, dtype=values.dtype)
        dense[idx] = values
        return dense
