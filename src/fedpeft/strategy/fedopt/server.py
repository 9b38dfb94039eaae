"""Adaptive server optimisers on the pseudo-gradient (the averaged client delta): FedAdam / FedYogi /
FedAdagrad (Reddi et al., 2021, Algorithm 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, StrategySpec, step, weighted_mean
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.fedopt.config import FedOptStrategy


class FedOpt(FedAvg):
    """Adaptive server optimisers: m = b1 m + (1 - b1) d; v by Adam, Yogi or Adagrad's rule;
    w = w + eta m / (sqrt(v) + tau), with m = 0 and v = tau^2 at the start.

    Example:
        >>> s = FedOpt(per_round=1, rule="adam", server_lr=0.1, beta1=0.0, beta2=0.0, tau=1e-3)
        >>> s.aggregate(1, {"w": torch.zeros(1)}, [ClientUpdate("a", {"w": torch.tensor([-4.0])}, 1)])["w"]
        tensor([-0.1000])
    """

    STATE = (*FedAvg.STATE, "m", "v")

    def __init__(
        self,
        per_round: int,
        rule: Literal["adam", "yogi", "adagrad"],
        server_lr: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
    ) -> None:
        super().__init__(per_round, server_lr)
        self.rule, self.beta1, self.beta2, self.tau = rule, beta1, beta2, tau
        self.m: TensorDict = {}
        self.v: TensorDict = {}

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        delta = weighted_mean(updates)
        direction: TensorDict = {}
        for n, d in delta.items():
            m = self.m.setdefault(n, torch.zeros_like(d))
            v = self.v.setdefault(n, torch.full_like(d, self.tau**2))
            m.mul_(self.beta1).add_(d, alpha=1 - self.beta1)
            d2 = d * d
            if self.rule == "adam":
                v.mul_(self.beta2).add_(d2, alpha=1 - self.beta2)
            elif self.rule == "yogi":
                v.sub_((1 - self.beta2) * d2 * torch.sign(v - d2))
            else:
                v.add_(d2)
            direction[n] = m / (v.sqrt() + self.tau)
        return step(state, direction, self.server_lr)


def _build(s: FedOptStrategy, per_round: int, _model: nn.Module) -> Strategy:
    rule = s.name.removeprefix("fed")
    return FedOpt(per_round, rule, s.server_lr, s.beta1, s.beta2, s.tau)  # type: ignore[arg-type]


for _name in ("fedadam", "fedyogi", "fedadagrad"):
    STRATEGIES.register(_name)(StrategySpec(_build, FedOptStrategy))
