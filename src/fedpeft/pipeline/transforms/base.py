"""What every update transform shares: the Transform interface, per-tensor transforms, seeds and sparsity helpers.

A transform maps a dict of named tensors ("parts") to the parts that travel, and back. It acts on every
floating-point part and passes the others through, so transforms stack: top-k turns ``w`` into ``w#v``
(values) and ``w#m`` (a bitmask); int8 then turns ``w#v`` into ``w#v#q`` and ``w#v#s``. ``wire_spec`` predicts
the parts' names, shapes and dtypes from the input's, so a receiver that knows what it expects can check
every part before it decodes anything.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from fedpeft.model.state import TensorDict

Shape = tuple[int, ...]
Spec = dict[str, tuple[Shape, torch.dtype]]


@dataclass
class EncodeContext:
    """What the sender knows beyond the tensors: a seed (stochastic rounding, random-k indices) and the
    values the update was taken from (LoRA rank pruning ranks components by their change to B·A)."""

    seed: int
    reference: Mapping[str, torch.Tensor] = field(default_factory=dict)
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)


def name_key(seed: int, name: str) -> list[int]:
    """The key of randomness both sides regenerate for one tensor: the payload's seed and the name."""
    return [seed, zlib.crc32(name.encode("utf-8"))]


class Transform:
    """One step of the pipeline. ``feedback`` marks lossy steps that want error feedback by default (read by
    ``CompressionConfig.feedback`` when ``compression.error_feedback`` is not set).

    Example:
        >>> from fedpeft.pipeline.transforms.cast import Cast
        >>> Cast(torch.float16).wire_spec({"w": ((3,), torch.float32)})
        {'w#h': ((3,), torch.float16)}
    """

    feedback: ClassVar[bool] = False

    def describe(self) -> str:
        raise NotImplementedError

    def wire_spec(self, spec: Spec) -> Spec:
        raise NotImplementedError

    def encode(self, parts: TensorDict, ctx: EncodeContext) -> TensorDict:
        raise NotImplementedError

    def decode(self, parts: TensorDict, spec: Spec, seed: int) -> TensorDict:
        """The input parts (``spec``) back from validated wire parts; InvalidUpdate if they are inconsistent."""
        raise NotImplementedError


class PerTensor(Transform):
    """A transform of each floating-point part on its own, into sub-parts named ``<part>#<suffix>``.

    Example:
        >>> from fedpeft.pipeline.transforms.cast import Cast
        >>> sorted(Cast(torch.bfloat16).encode({"w": torch.ones(2), "i": torch.ones(2, dtype=torch.long)},
        ...                                    EncodeContext(seed=0)))
        ['i', 'w#h']
    """

    def part_spec(self, shape: Shape, dtype: torch.dtype) -> Spec:
        raise NotImplementedError

    def encode_one(self, name: str, x: torch.Tensor, ctx: EncodeContext) -> TensorDict:
        raise NotImplementedError

    def decode_one(self, name: str, sub: TensorDict, shape: Shape, seed: int) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _applies(shape: Shape, dtype: torch.dtype) -> bool:
        return dtype.is_floating_point and math.prod(shape) > 0

    def wire_spec(self, spec: Spec) -> Spec:
        out: Spec = {}
        for name, (shape, dtype) in spec.items():
            if self._applies(shape, dtype):
                out.update({f"{name}#{s}": v for s, v in self.part_spec(shape, dtype).items()})
            else:
                out[name] = (shape, dtype)
        return out

    def encode(self, parts: TensorDict, ctx: EncodeContext) -> TensorDict:
        out: TensorDict = {}
        for name, x in parts.items():
            if self._applies(tuple(x.shape), x.dtype):
                out.update({f"{name}#{s}": t for s, t in self.encode_one(name, x, ctx).items()})
            else:
                out[name] = x
        return out

    def decode(self, parts: TensorDict, spec: Spec, seed: int) -> TensorDict:
        out: TensorDict = {}
        for name, (shape, dtype) in spec.items():
            if self._applies(shape, dtype):
                sub = {s: parts[f"{name}#{s}"] for s in self.part_spec(shape, dtype)}
                out[name] = self.decode_one(name, sub, shape, seed).reshape(shape).to(dtype)
            else:
                out[name] = parts[name]
        return out


def kept(density: float, n: int) -> int:
    """Entries a sparsifier keeps of ``n``: ceil(density n), at least one."""
    return min(n, max(1, math.ceil(density * n)))


def index_spec(n: int, k: int) -> tuple[str, tuple[Shape, torch.dtype]]:
    """The smallest encoding of k sorted positions among n: a bitmask (n/8 bytes), int16 or int32 indices."""
    options = [(math.ceil(n / 8), "m", ((math.ceil(n / 8),), torch.uint8))]
    if n <= 2**15:
        options.append((2 * k, "i", ((k,), torch.int16)))
    options.append((4 * k, "i", ((k,), torch.int32)))
    _, suffix, spec = min(options, key=lambda o: o[0])
    return suffix, spec
