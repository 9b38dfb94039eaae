"""LoRA factor pairs in a tensor dict: find them, cut them to a rank, pad them back, multiply them.

peft names a layer's factors ``<module>.lora_A.<adapter>.weight`` (rank x in, or a 1x1 conv) and
``<module>.lora_B.<adapter>.weight`` (out x rank). Rank r keeps A's first r rows and B's first r columns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from fedpeft.model.state import TensorDict

Spec = dict[str, tuple[tuple[int, ...], torch.dtype]]
_FACTOR = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.(?P<adapter>[^.]+)\.weight$")


@dataclass(frozen=True)
class LoraPair:
    """The names of one adapted layer's A and B factors.

    Example:
        >>> lora_pairs(["m.lora_A.default.weight", "m.lora_B.default.weight", "head.weight"])
        [LoraPair(module='m', a='m.lora_A.default.weight', b='m.lora_B.default.weight')]
    """

    module: str
    a: str
    b: str


def lora_pairs(names: Iterable[str]) -> list[LoraPair]:
    """Every adapted layer with a B among ``names`` (A may be absent: FFA-LoRA's A is frozen, not trainable)."""
    names = set(names)
    pairs = []
    for name in sorted(names):
        m = _FACTOR.match(name)
        if m and m["which"] == "B":
            pairs.append(LoraPair(m["module"], f"{m['module']}.lora_A.{m['adapter']}.weight", name))
    return pairs


def factor_names(pairs: Iterable[LoraPair]) -> set[str]:
    return {n for p in pairs for n in (p.a, p.b)}


def truncate(tensors: TensorDict, pairs: Iterable[LoraPair], rank: int) -> TensorDict:
    """Keep the first ``rank`` components of every pair present (other tensors pass unchanged)."""
    out = dict(tensors)
    for p in pairs:
        if p.a in out:
            out[p.a] = out[p.a][:rank].contiguous()
        if p.b in out:
            out[p.b] = out[p.b][:, :rank].contiguous()
    return out


def pad(tensors: TensorDict, pairs: Iterable[LoraPair], rank: int) -> TensorDict:
    """Zero-pad every pair present to ``rank`` components (the inverse of ``truncate`` on its part)."""
    out = dict(tensors)
    for p in pairs:
        if p.a in out and out[p.a].shape[0] < rank:
            a = out[p.a]
            out[p.a] = torch.cat([a, a.new_zeros((rank - a.shape[0], *a.shape[1:]))], 0)
        if p.b in out and out[p.b].shape[1] < rank:
            b = out[p.b]
            out[p.b] = torch.cat([b, b.new_zeros((b.shape[0], rank - b.shape[1], *b.shape[2:]))], 1)
    return out


def truncate_spec(spec: Spec, pairs: Iterable[LoraPair], rank: int) -> Spec:
    out = dict(spec)
    for p in pairs:
        if p.a in out:
            shape, dtype = out[p.a]
            out[p.a] = ((min(rank, shape[0]), *shape[1:]), dtype)
        if p.b in out:
            shape, dtype = out[p.b]
            out[p.b] = ((shape[0], min(rank, shape[1]), *shape[2:]), dtype)
    return out


def product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """B @ A as an (out, in) matrix, in float32 (1x1-conv factors are flattened first)."""
    return b.float().reshape(b.shape[0], b.shape[1]) @ a.float().reshape(a.shape[0], -1)


def split(delta: torch.Tensor, rank: int, like_a: torch.Tensor, like_b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The best rank-``rank`` factors (A, B) of ``delta`` (truncated SVD, singular values split evenly), in
    the shapes and dtypes of ``like_a`` / ``like_b``, zero-padded to their rank. Components come sorted by
    singular value, so truncating the result to r' < rank gives the best rank-r' approximation too."""
    u, s, vh = torch.linalg.svd(delta.float(), full_matrices=False)
    k = min(rank, s.numel())
    root = s[:k].sqrt()
    a = torch.zeros(like_a.shape[0], math.prod(like_a.shape[1:]))
    b = torch.zeros(like_b.shape[0], like_b.shape[1])
    a[:k] = root[:, None] * vh[:k]
    b[:, :k] = u[:, :k] * root[None, :]
    return a.reshape(like_a.shape).to(like_a.dtype), b.reshape(like_b.shape).to(like_b.dtype)
