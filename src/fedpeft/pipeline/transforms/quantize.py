"""Unbiased quantisation to int8, int4 or int2 with one bf16 scale per block; safe on the downlink.

Example:
    >>> t = Quantize(bits=8, block=4)
    >>> parts = t.encode({"w": torch.tensor([0.5, -1.0, 0.25, 0.0])}, EncodeContext(seed=0))
    >>> sorted(parts), parts["w#q"].dtype
    (['w#q', 'w#s'], torch.int8)
    >>> t.decode(parts, {"w": ((4,), torch.float32)}, seed=0)["w"].shape
    torch.Size([4])
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from fedpeft.config.compression import TransformConfig
from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.model.state import TensorDict
from fedpeft.pipeline.transforms.base import EncodeContext, PerTensor, Shape, Spec, name_key


@TRANSFORM_CONFIGS.add
class QuantizeTransform(TransformConfig):
    """Unbiased quantisation to int8, int4 or int2 (ternary: -1, 0, +1) with one bf16 scale per block of
    values (``block: null`` gives one scale per tensor). ``rounding: stochastic`` rounds up with probability
    equal to the fraction; ``dithered`` adds a seeded uniform dither that the receiver subtracts again
    (subtractive dithering: the error is uniform and independent of the value, with a third of the
    worst-case variance of stochastic rounding).

    Example:
        >>> QuantizeTransform(name="int4", block=32).build().describe()
        'int4(block=32)'
    """

    name: Literal["int8", "int4", "int2"] = "int8"
    block: int | None = Field(64, ge=2, description="values per scale; null = one scale per tensor")
    rounding: Literal["stochastic", "dithered"] = "stochastic"
    downlink: ClassVar[bool] = True

    def build(self) -> Quantize:
        return Quantize(int(self.name.removeprefix("int")), self.block, self.rounding)


class Quantize(PerTensor):
    """Unbiased rounding to ``bits``-bit integers in [-(2^(bits-1) - 1), 2^(bits-1) - 1] (int2 is ternary)
    with one bf16 scale per ``block`` values (None: per tensor); int4 and int2 pack 2 and 4 values per byte.

    ``stochastic`` rounding goes up with probability equal to the fraction, so E[q s] = x. ``dithered``
    rounds x/s + u for a uniform u in [-1/2, 1/2) drawn from the header's seed and the tensor's name; the
    receiver subtracts the same u, so the error s (round(y + u) - (y + u)) is uniform in [-s/2, s/2] and
    independent of x: unbiased, with variance s^2/12.
    """

    def __init__(self, bits: int, block: int | None, rounding: str = "stochastic") -> None:
        self.bits, self.block, self.dithered = bits, block, rounding == "dithered"
        self.qmax = 2 ** (bits - 1) - 1
        self.per_byte = 8 // bits

    def describe(self) -> str:
        return f"int{self.bits}(block={self.block or 'tensor'}{', dithered' if self.dithered else ''})"

    def _blocks(self, n: int) -> tuple[int, int]:
        size = self.block or n
        return size, -(-n // size)

    @staticmethod
    def _dither(name: str, seed: int, shape: torch.Size) -> torch.Tensor:
        """The same uniform dither on both sides, from the payload's seed and the tensor's name."""
        state = np.random.SeedSequence(name_key(seed, name)).generate_state(1)[0]
        return torch.rand(shape, generator=torch.Generator().manual_seed(int(state))) - 0.5

    def part_spec(self, shape: Shape, dtype: torch.dtype) -> Spec:
        n = math.prod(shape)
        q = ((n,), torch.int8) if self.bits == 8 else ((-(-n // self.per_byte),), torch.uint8)
        return {"q": q, "s": ((self._blocks(n)[1],), torch.bfloat16)}

    def encode_one(self, name: str, x: torch.Tensor, ctx: EncodeContext) -> TensorDict:
        flat = x.reshape(-1).float()
        n = flat.numel()
        size, count = self._blocks(n)
        blocks = torch.nn.functional.pad(flat, (0, size * count - n)).view(count, size)
        # round the scale up before it goes to bf16, so |x| / scale < qmax after rounding too
        scale = (blocks.abs().amax(1) / self.qmax * (1 + 2**-7)).to(torch.bfloat16)
        safe = torch.where(scale.float() > 0, scale.float(), torch.ones(()))
        y = blocks / safe[:, None]
        if self.dithered:
            q = torch.round(y + self._dither(name, ctx.seed, y.shape))
        else:
            q = torch.floor(y + torch.rand(y.shape, generator=ctx.generator))
        q = q.clamp_(-self.qmax, self.qmax).reshape(-1)[:n]
        if self.bits == 8:
            return {"q": q.to(torch.int8), "s": scale}
        codes = torch.nn.functional.pad((q + 2 ** (self.bits - 1)).to(torch.uint8), (0, -n % self.per_byte))
        codes = codes.view(-1, self.per_byte)
        packed = torch.zeros(codes.shape[0], dtype=torch.uint8)
        for i in range(self.per_byte):
            packed |= codes[:, i] << (self.bits * i)
        return {"q": packed, "s": scale}

    def decode_one(self, name: str, sub: TensorDict, shape: Shape, seed: int) -> torch.Tensor:
        n = math.prod(shape)
        size, count = self._blocks(n)
        if self.bits == 8:
            q = sub["q"].float()
        else:
            mask = 2**self.bits - 1
            packed = sub["q"]
            codes = torch.stack([(packed >> (self.bits * i)) & mask for i in range(self.per_byte)], 1)
            q = codes.reshape(-1)[:n].float() - 2 ** (self.bits - 1)
        q = torch.nn.functional.pad(q, (0, size * count - n)).view(count, size)
        if self.dithered:
            q = q - self._dither(name, seed, q.shape)
        return (q * sub["s"].float()[:, None]).reshape(-1)[:n]
