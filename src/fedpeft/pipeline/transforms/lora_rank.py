"""LoRA rank pruning: send only the rank components of each adapted layer that changed most."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from fedpeft.config.compression import TransformConfig
from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.errors import InvalidUpdate
from fedpeft.model.lora_factors import lora_pairs
from fedpeft.model.state import TensorDict
from fedpeft.pipeline.transforms.base import EncodeContext, Spec, Transform


@TRANSFORM_CONFIGS.add
class LoraRankTransform(TransformConfig):
    """LoRA rank pruning: send only the ``keep`` rank components of each adapted layer whose change to
    B·A is largest (the others are sent as unchanged).

    Example:
        >>> LoraRankTransform(keep=2).build().describe()
        'lora_rank(keep=2)'
    """

    name: Literal["lora_rank"] = "lora_rank"
    keep: int = Field(4, ge=1, description="rank components sent per adapted layer")

    def build(self) -> LoraRank:
        return LoraRank(self.keep)


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
            strength = component_change(
                parts[b],
                None if a is None else parts[a],
                ctx.reference.get(b),
                None if a is None else ctx.reference.get(a),
            )
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
    sq = (
        (b1 * b1).sum(1) * (a1 * a1).sum(1)
        + (b0 * b0).sum(1) * (a0 * a0).sum(1)
        - 2 * (b1 * b0).sum(1) * (a1 * a0).sum(1)
    )
    return sq.clamp(min=0).sqrt()
