"""FedProx (Li et al., 2020): FedAvg on the server, a proximal term on every client's trainable tensors."""

from __future__ import annotations

from torch import nn

from fedpeft.client.plugins import ClientPlugin
from fedpeft.strategy.base import STRATEGIES, Strategy, StrategySpec
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.fedprox.client import ProximalTerm
from fedpeft.strategy.fedprox.config import FedProxStrategy


class FedProx(FedAvg):
    """FedAvg whose clients minimise loss + mu/2 ||w - w_global||^2 (``mu = 0`` is FedAvg).

    Example:
        >>> FedProx(per_round=10, mu=0.1).client_plugins()[0].mu
        0.1
    """

    def __init__(self, per_round: int, mu: float, server_lr: float = 1.0) -> None:
        super().__init__(per_round, server_lr)
        self.mu = mu

    def client_plugins(self) -> list[ClientPlugin]:
        return [ProximalTerm(self.mu), *super().client_plugins()]


def _build(s: FedProxStrategy, per_round: int, _model: nn.Module) -> Strategy:
    return FedProx(per_round, s.mu, s.server_lr)


STRATEGIES.register("fedprox")(StrategySpec(_build, FedProxStrategy))
