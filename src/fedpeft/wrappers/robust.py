"""Robustness as strategy wrappers: a norm bound on every received update, and a Byzantine-robust rule in
place of the weighted mean (the rules themselves are in ``fedpeft.strategy.robust``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fedpeft.strategy.base import Accumulator, ClientUpdate, Strategy, bound_norm
from fedpeft.strategy.robust import Aggregator
from fedpeft.wrappers.strategy import StrategyWrapper, combined


class NormBound(StrategyWrapper):
    """Every received update is scaled down to an L2 norm of at most ``bound`` (all its tensors together).

    Example:
        >>> import torch
        >>> from fedpeft.strategy import FedAvg
        >>> s = NormBound(FedAvg(per_round=1), bound=1.0); s.initialize({"w": torch.zeros(2)})
        >>> s.receive(ClientUpdate("a", {"w": torch.tensor([3.0, 4.0])}, 1)).delta["w"].tolist()
        [0.6000000238418579, 0.800000011920929]
    """

    def __init__(self, strategy: Strategy, bound: float) -> None:
        super().__init__(strategy)
        self.bound = bound

    def receive(self, update: ClientUpdate) -> ClientUpdate:
        return self.inner.receive(replace(update, delta=bound_norm(update.delta, self.bound)))

    def accumulator(self, round_: int) -> Accumulator:
        return self.inner.accumulator(round_)  # bounded on receipt: the inner strategy folds as it would


class RobustAggregation(StrategyWrapper):
    """The round's updates are combined by a robust rule (median, trimmed mean, Krum) over every tensor they
    carry; the wrapped strategy then applies that one combined update as it would a mean. The rules need
    every update at once, so a round's updates are kept until it ends.

    Example:
        >>> import torch
        >>> from fedpeft.strategy import FedAvg
        >>> from fedpeft.strategy.robust import coordinate_median
        >>> s = RobustAggregation(FedAvg(per_round=3), coordinate_median); s.initialize({"w": torch.zeros(1)})
        >>> ups = [ClientUpdate(c, {"w": torch.tensor([v])}, 1) for c, v in (("a", 1.0), ("b", 2.0), ("c", 90.0))]
        >>> s.aggregate_train(1, ups); s.global_state["w"].tolist()
        [2.0]
    """

    def __init__(self, strategy: Strategy, rule: Aggregator) -> None:
        super().__init__(strategy)
        self.rule = rule

    def aggregate_train(self, round_: int, updates: Sequence[ClientUpdate]) -> None:
        self.inner.aggregate_train(round_, [combined(updates, self.rule(updates, None), "robust-aggregate")])
