"""FedAvgM (Hsu et al., 2019): server momentum on the pseudo-gradient (the averaged client delta)."""

from __future__ import annotations

from collections.abc import Sequence

import torch  # noqa: F401  (the doctests use it)
from torch import nn

from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, StrategySpec, step, weighted_mean
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.fedavgm.config import FedAvgMStrategy

_DEFAULTS = FedAvgMStrategy()  # the constructor's defaults are the config's, defined once there


class FedAvgM(FedAvg):
    """Server momentum: v = beta v + delta, w = w + server_lr v.

    Example:
        >>> s = FedAvgM(per_round=1, momentum=0.5, server_lr=1.0)
        >>> w = s.aggregate(1, {"w": torch.zeros(1)}, [ClientUpdate("a", {"w": torch.ones(1)}, 1)])
        >>> s.aggregate(2, w, [ClientUpdate("a", {"w": torch.ones(1)}, 1)])["w"].tolist()  # 1 + (0.5 + 1)
        [2.5]
    """

    STATE = (*FedAvg.STATE, "velocity")

    def __init__(
        self, per_round: int, momentum: float = _DEFAULTS.momentum, server_lr: float = _DEFAULTS.server_lr
    ) -> None:
        super().__init__(per_round, server_lr)
        self.momentum = momentum
        self.velocity: TensorDict = {}

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        delta = weighted_mean(updates)
        for n, d in delta.items():
            self.velocity[n] = self.velocity[n].mul_(self.momentum).add_(d) if n in self.velocity else d.clone()
        return step(state, {n: self.velocity[n] for n in delta}, self.server_lr)


def _build(s: FedAvgMStrategy, per_round: int, _model: nn.Module) -> Strategy:
    return FedAvgM(per_round, s.momentum, s.server_lr)


STRATEGIES.register("fedavgm")(StrategySpec(_build, FedAvgMStrategy))
