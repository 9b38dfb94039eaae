"""HetLoRA (Cho et al., 2024): clients of mixed ranks, zero-padded to the largest rank and aggregated with
weights that grow with the norm of each client's update; each client gets the global factors cut to its rank.
With ``self_prune`` a client regularises its top components and drops them once their norm falls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fedpeft.client.plugins import ClientPlugin
from fedpeft.model.lora_factors import product
from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, StrategySpec
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.hetlora.client import RankSelfPruning
from fedpeft.strategy.hetlora.config import HetLoraStrategy


class HetLora(FedAvg):
    """Per adapted layer: factors = sum_i p_i [A_i, B_i] (zero-padded), p_i proportional to
    n_i * ||B_i A_i||_F; other trainable tensors are averaged by examples.

    Example:
        >>> HetLora(per_round=10, self_prune=True).self_prune
        True
    """

    STATE = (*FedAvg.STATE, "pruned")

    def __init__(
        self,
        per_round: int,
        server_lr: float = 1.0,
        self_prune: bool = False,
        gamma: float = 0.9,
        lam: float = 1e-3,
        min_rank: int = 1,
    ) -> None:
        super().__init__(per_round, server_lr)
        self.self_prune, self.gamma, self.lam, self.min_rank = self_prune, gamma, lam, min_rank
        self.pruned: dict[str, int] = {}

    @property
    def uses_ranks(self) -> bool:
        return bool(self.ranks) or self.self_prune

    def rank(self, client_id: str) -> int | None:
        tier = self.ranks.get(client_id, self.full_rank if self.self_prune else None)
        return tier if tier is None else min(tier, self.pruned.get(client_id, tier))

    def receive(self, update: ClientUpdate) -> ClientUpdate:
        if "next_rank" in update.metrics:
            self.pruned[update.client_id] = int(update.metrics["next_rank"])
        return super().receive(update)

    streams = False  # needs each update at its client's rank: the updates are kept until the round ends

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        new = self.step_non_factors(state, updates)
        starts = [self.start_state(u, round_) for u in updates]
        for p in self.pairs:
            a_i = [s[p.a].float() + u.delta[p.a].float() for u, s in zip(updates, starts)]
            b_i = [s[p.b].float() + u.delta[p.b].float() for u, s in zip(updates, starts)]
            w = torch.tensor([u.weight * float(product(a, b).norm()) for u, a, b in zip(updates, a_i, b_i)])
            w = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1.0 / len(w))
            for name, parts in ((p.a, a_i), (p.b, b_i)):
                target = sum(wi * t for wi, t in zip(w.tolist(), parts))
                new[name] = (state[name].float() + self.server_lr * (target - state[name].float())).to(
                    state[name].dtype
                )
        return new

    def client_plugins(self) -> list[ClientPlugin]:
        plugins = super().client_plugins()
        if self.self_prune:
            plugins.insert(0, RankSelfPruning(self.gamma, self.lam, self.min_rank))
        return plugins


def _build(s: HetLoraStrategy, per_round: int, _model: nn.Module) -> Strategy:
    return HetLora(per_round, s.server_lr, s.self_prune, s.prune_gamma, s.prune_lambda, s.min_rank)


STRATEGIES.register("hetlora")(StrategySpec(_build, HetLoraStrategy))
