"""Server optimisers on the pseudo-gradient (the averaged client delta): FedAvgM (Hsu et al., 2019) and
FedAdam / FedYogi / FedAdagrad (Reddi et al., 2021, Algorithm 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from fedpeft.config.schema import RunConfig
from fedpeft.config.strategies import FedAvgMStrategy, FedOptStrategy
from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, StrategySpec, step, weighted_mean
from fedpeft.strategy.fedavg import FedAvg


class FedAvgM(FedAvg):
    """Server momentum: v = beta v + delta, w = w + server_lr v.

    Example:
        >>> s = FedAvgM(per_round=1, momentum=0.5)
        >>> w = s.aggregate(1, {"w": torch.zeros(1)}, [ClientUpdate("a", {"w": torch.ones(1)}, 1)])
        >>> s.aggregate(2, w, [ClientUpdate("a", {"w": torch.ones(1)}, 1)])["w"].tolist()  # 1 + (0.5 + 1)
        [2.5]
    """

    STATE = (*FedAvg.STATE, "velocity")

    def __init__(self, per_round: int, momentum: float, server_lr: float = 1.0) -> None:
        super().__init__(per_round, server_lr)
        self.momentum = momentum
        self.velocity: TensorDict = {}

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        delta = weighted_mean(updates)
        for n, d in delta.items():
            self.velocity[n] = self.velocity[n].mul_(self.momentum).add_(d) if n in self.velocity else d.clone()
        return step(state, {n: self.velocity[n] for n in delta}, self.server_lr)


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
        self, per_round: int, rule: Literal["adam", "yogi", "adagrad"], server_lr: float = 0.01,
        beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3,
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


def _fedavgm(cfg: RunConfig, _model: nn.Module | None) -> Strategy:
    s = cfg.strategy
    assert isinstance(s, FedAvgMStrategy)
    return FedAvgM(cfg.clients.per_round, s.momentum, s.server_lr)


def _fedopt(cfg: RunConfig, _model: nn.Module | None) -> Strategy:
    s = cfg.strategy
    assert isinstance(s, FedOptStrategy)
    rule = s.name.removeprefix("fed")
    return FedOpt(cfg.clients.per_round, rule, s.server_lr, s.beta1, s.beta2, s.tau)  # type: ignore[arg-type]


STRATEGIES.register("fedavgm")(StrategySpec(_fedavgm))
for _name in ("fedadam", "fedyogi", "fedadagrad"):
    STRATEGIES.register(_name)(StrategySpec(_fedopt))
