"""HetLoRA's client half: local rank self-pruning."""

from __future__ import annotations

import math

import torch

from fedpeft.client.plugins import ClientPlugin, FitContext
from fedpeft.model.lora_factors import lora_pairs


class RankSelfPruning(ClientPlugin):
    """HetLoRA's local rank self-pruning. The tail components [ceil(gamma r), r) of every pair carry a
    regulariser lambda ||A_tail|| ||B_tail||; when its total has fallen since the client's last round, the
    client drops the tail and works at rank ceil(gamma r) from then on. Place it before ``RankMask``.

    Example:
        >>> RankSelfPruning(gamma=0.75, lam=1e-3, min_rank=1)._keep(8)
        6
    """

    personal = True

    KEY_RANK, KEY_NORM = "hetlora/rank", "hetlora/tail_norm"

    def __init__(self, gamma: float, lam: float, min_rank: int) -> None:
        self.gamma, self.lam, self.min_rank = gamma, lam, min_rank

    def receive(self, ctx: FitContext) -> None:
        tier = int(ctx.config["rank"])
        kept = ctx.personal.get(self.KEY_RANK)
        ctx.rank = min(tier, int(kept.item())) if kept is not None else tier
        self.pairs = lora_pairs(ctx.params)

    def _keep(self, rank: int) -> int:
        return max(self.min_rank, math.ceil(self.gamma * rank))

    @torch.no_grad()
    def gradients(self, ctx: FitContext) -> None:
        assert ctx.rank is not None
        lo, hi = self._keep(ctx.rank), ctx.rank
        if lo >= hi or self.lam == 0:
            return
        for p in self.pairs:
            a, b = ctx.params[p.a], ctx.params[p.b]
            na, nb = a[lo:hi].norm(), b[:, lo:hi].norm()
            if a.grad is not None and na > 0:
                a.grad[lo:hi].add_(a[lo:hi], alpha=float(self.lam * nb / na))
            if b.grad is not None and nb > 0:
                b.grad[:, lo:hi].add_(b[:, lo:hi], alpha=float(self.lam * na / nb))

    def finish(self, ctx: FitContext) -> None:
        assert ctx.rank is not None
        lo, hi = self._keep(ctx.rank), ctx.rank
        tail = sum(
            float(ctx.params[p.a][lo:hi].detach().norm() * ctx.params[p.b][:, lo:hi].detach().norm())
            for p in self.pairs
        )
        before = ctx.personal.get(self.KEY_NORM)
        rank = ctx.rank
        if lo < hi and before is not None and tail < float(before):
            rank = lo
        ctx.personal[self.KEY_RANK] = torch.tensor(rank)
        ctx.personal[self.KEY_NORM] = torch.tensor(tail)
        ctx.metrics["next_rank"] = float(rank)
