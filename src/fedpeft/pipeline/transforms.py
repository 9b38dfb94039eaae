"""Update transforms: each maps a dict of named tensors ("parts") to the parts that travel, and back.

A transform acts on every floating-point part and passes the others through, so transforms stack: top-k
turns ``w`` into ``w#v`` (values) and ``w#m`` (a bitmask); int8 then turns ``w#v`` into ``w#v#q`` and
``w#v#s``. ``wire_spec`` predicts the parts' names, shapes and dtypes from the input's, so a receiver that
knows what it expects can check every part before it decodes anything.

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
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from fedpeft.config.compression import (
    CastTransform,
    LoraRankTransform,
    PruneTransform,
    QuantizeTransform,
    RandomKTransform,
    TopKTransform,
)
from fedpeft.errors import InvalidUpdate
from fedpeft.model.lora_factors import lora_pairs
from fedpeft.model.state import TensorDict
from fedpeft.registry import Registry

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
    """One step of the pipeline. ``feedback`` marks lossy steps that want error feedback by default."""

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
    """A transform of each floating-point part on its own, into sub-parts named ``<part>#<suffix>``."""

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


class Cast(PerTensor):
    """fp16 or bf16 on the wire (fp16 saturates at +-65504 instead of overflowing)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def describe(self) -> str:
        return "fp16" if self.dtype == torch.float16 else "bf16"

    def part_spec(self, shape: Shape, dtype: torch.dtype) -> Spec:
        return {"h": (shape, self.dtype)}

    def encode_one(self, name: str, x: torch.Tensor, ctx: EncodeContext) -> TensorDict:
        limit = torch.finfo(self.dtype).max
        return {"h": x.float().clamp(-limit, limit).to(self.dtype)}

    def decode_one(self, name: str, sub: TensorDict, shape: Shape, seed: int) -> torch.Tensor:
        return sub["h"].float()


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


class MagnitudePrune(TopK):
    """Magnitude pruning of the update: top-k without error feedback (what is pruned is gone)."""

    feedback = False

    def __init__(self, amount: float) -> None:
        super().__init__(1.0 - amount)
        self.amount = amount

    def describe(self) -> str:
        return f"prune(amount={self.amount:g})"


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


class LoraRank(Transform):
    """Send ``keep`` rank components of each LoRA pair: those whose change to B·A is largest in Frobenius
    norm, ||b'a'^T - b a^T|| (b, a: a component's column of B and row of A before training; b', a' after).
    The kept indices travel as int16; the receiver puts zeros (no change) in the others."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def describe(self) -> str:
        return f"lora_rank(keep={self.keep})"

    def _cut(self, spec: Spec) -> list[tuple[str, str | None, int]]:
        """(B name, A name or None, components kept) of every pair whose rank exceeds ``keep``."""
        cut = []
        for pair in lora_pairs(spec):
            rank = spec[pair.b][0][1]
            if rank > self.keep:
                cut.append((pair.b, pair.a if pair.a in spec else None, self.keep))
        return cut

    def wire_spec(self, spec: Spec) -> Spec:
        out = dict(spec)
        for b, a, k in self._cut(spec):
            shape, dtype = out.pop(b)
            out[f"{b}#r"] = ((shape[0], k, *shape[2:]), dtype)
            out[f"{b}#k"] = ((k,), torch.int16)
            if a is not None:
                shape, dtype = out.pop(a)
                out[f"{a}#r"] = ((k, *shape[1:]), dtype)
        return out

    def encode(self, parts: TensorDict, ctx: EncodeContext) -> TensorDict:
        spec = {n: (tuple(t.shape), t.dtype) for n, t in parts.items()}
        out = dict(parts)
        for b, a, k in self._cut(spec):
            strength = component_change(parts[b], None if a is None else parts[a],
                                        ctx.reference.get(b), None if a is None else ctx.reference.get(a))
            idx = strength.topk(k).indices.sort().values
            out[f"{b}#r"], out[f"{b}#k"] = out.pop(b)[:, idx].contiguous(), idx.to(torch.int16)
            if a is not None:
                out[f"{a}#r"] = out.pop(a)[idx].contiguous()
        return out

    def decode(self, parts: TensorDict, spec: Spec, seed: int) -> TensorDict:
        out = dict(parts)
        for b, a, _k in self._cut(spec):
            idx = out.pop(f"{b}#k").long()
            rank = spec[b][0][1]
            if idx[0] < 0 or idx[-1] >= rank or bool((idx[1:] <= idx[:-1]).any()):
                raise InvalidUpdate(f"{b}: kept rank components must be increasing and within [0, {rank})")
            for name, dim in ((b, 1), (a, 0)):
                if name is None:
                    continue
                shape, dtype = spec[name]
                full = torch.zeros(shape, dtype=dtype)
                full.index_copy_(dim, idx, out.pop(f"{name}#r").to(dtype))
                out[name] = full
        return out


def component_change(
    db: torch.Tensor, da: torch.Tensor | None, b0: torch.Tensor | None, a0: torch.Tensor | None
) -> torch.Tensor:
    """||b'_i a'_i^T - b_i a_i^T||_F for every rank component i, without forming the matrices (a missing
    factor counts as unchanged; a missing start as zero). In float64: the terms cancel."""
    db = db.double().reshape(db.shape[0], db.shape[1]).T  # (r, out)
    rank = db.shape[0]
    b0 = torch.zeros_like(db) if b0 is None else b0.double().reshape(b0.shape[0], b0.shape[1]).T
    if da is None:  # A did not train (FFA-LoRA): the change is db_i a_i^T, sized by ||db_i|| (||a_i|| unknown)
        return db.norm(dim=1)
    da = da.double().reshape(rank, -1)
    a0 = torch.zeros_like(da) if a0 is None else a0.double().reshape(rank, -1)
    b1, a1 = b0 + db, a0 + da
    sq = (b1 * b1).sum(1) * (a1 * a1).sum(1) + (b0 * b0).sum(1) * (a0 * a0).sum(1) \
        - 2 * (b1 * b0).sum(1) * (a1 * a0).sum(1)
    return sq.clamp(min=0).sqrt()


TRANSFORMS: Registry[Callable[..., Transform]] = Registry("update transform")
TRANSFORMS.register("fp16")(lambda cfg: Cast(torch.float16))
TRANSFORMS.register("bf16")(lambda cfg: Cast(torch.bfloat16))
TRANSFORMS.register("int8")(lambda cfg: Quantize(8, cfg.block, cfg.rounding))
TRANSFORMS.register("int4")(lambda cfg: Quantize(4, cfg.block, cfg.rounding))
TRANSFORMS.register("int2")(lambda cfg: Quantize(2, cfg.block, cfg.rounding))
TRANSFORMS.register("topk")(lambda cfg: TopK(cfg.density))
TRANSFORMS.register("randk")(lambda cfg: RandomK(cfg.density, cfg.rescale))
TRANSFORMS.register("prune")(lambda cfg: MagnitudePrune(cfg.amount))
TRANSFORMS.register("lora_rank")(lambda cfg: LoraRank(cfg.keep))


def build_transform(
    cfg: CastTransform | QuantizeTransform | TopKTransform | RandomKTransform | PruneTransform | LoraRankTransform,
) -> Transform:
    return TRANSFORMS.get(cfg.name)(cfg)
