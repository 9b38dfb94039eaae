"""FedAvg (McMahan et al., 2017): the example-weighted mean of client deltas, applied with a server step."""

from __future__ import annotations

from collections.abc import Sequence

from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, StrategySpec, step, weighted_mean
from fedpeft.strategy.fedavg.config import FedAvgStrategy


class FedAvg(Strategy):
    """Weighted FedAvg with a server learning rate (1.0 gives the classic algorithm).

    Example:
        >>> import torch
        >>> s = FedAvg(per_round=2)
        >>> ups = [ClientUpdate("a", {"w": torch.tensor([1.0])}, 1), ClientUpdate("b", {"w": torch.tensor([4.0])}, 3)]
        >>> s.aggregate(1, {"w": torch.tensor([0.0])}, ups)["w"].tolist()
        [3.25]
    """

    streams = True  # the weighted mean is all it reads: updates are folded in as they arrive

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        return step(state, weighted_mean(updates), self.server_lr)


STRATEGIES.register("fedavg")(StrategySpec(lambda s, per_round, _model: FedAvg(per_round, s.server_lr), FedAvgStrategy))
