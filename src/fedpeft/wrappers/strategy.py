"""The base of every strategy wrapper: each call goes to the wrapped strategy unless the wrapper overrides it.

Like Flower's ``DifferentialPrivacyServerSideFixedClipping``, a wrapper sees a round's updates before the
strategy does and may replace them (a clipped, noised mean over every tensor a client sent, model tensors and
strategy state such as control variates alike), so no tensor group can slip past it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fedpeft.client.plugins import ClientPlugin, Scalar
from fedpeft.model.lora_factors import Spec
from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import Accumulator, ClientUpdate, Collect, Strategy

W = TypeVar("W", bound="StrategyWrapper")
T = TypeVar("T")


class StrategyWrapper(Strategy):
    """Delegates the whole strategy interface to ``inner`` (every method of ``Strategy``, so none runs on the
    wrapper by accident); other attributes it does not define are read from it.

    Example:
        >>> from fedpeft.strategy import FedAvg
        >>> import torch
        >>> s = StrategyWrapper(FedAvg(per_round=2)); s.initialize({"w": torch.zeros(1)})
        >>> s.aggregate_train(1, [ClientUpdate("a", {"w": torch.ones(1)}, 1)]); s.global_state["w"].tolist()
        [1.0]
    """

    STATE: tuple[str, ...] = ()  # the wrapper's own checkpointed attributes (the inner strategy saves its own)

    def __init__(self, inner: Strategy) -> None:  # no Strategy.__init__: the state lives in ``inner``
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. during unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def global_state(self) -> TensorDict:
        return self.inner.global_state

    @global_state.setter
    def global_state(self, value: TensorDict) -> None:
        self.inner.global_state = value

    @property
    def personal_names(self) -> frozenset[str]:
        return self.inner.personal_names

    @personal_names.setter
    def personal_names(self, value: frozenset[str]) -> None:
        self.inner.personal_names = value

    def initialize(
        self,
        state: TensorDict,
        ranks: Mapping[str, int] | None = None,
        num_clients: int | None = None,
        keep_past: int = 0,
    ) -> None:
        self.inner.initialize(state, ranks, num_clients, keep_past)

    @property
    def releases_every_round(self) -> bool:
        return self.inner.releases_every_round

    def configure_train(self, round_: int, client_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        return self.inner.configure_train(round_, client_ids, rng)

    def secure_weight(self, num_examples: int) -> float:
        return self.inner.secure_weight(num_examples)

    def rank(self, client_id: str) -> int | None:
        return self.inner.rank(client_id)

    def downlink(self, round_: int, client_id: str) -> tuple[TensorDict, dict[str, Scalar]]:
        return self.inner.downlink(round_, client_id)

    def uplink_spec(self, client_id: str, metrics: Mapping[str, float]) -> Spec:
        return self.inner.uplink_spec(client_id, metrics)

    def receive(self, update: ClientUpdate) -> ClientUpdate:
        return self.inner.receive(update)

    def accumulator(self, round_: int) -> Accumulator:
        """A wrapper that changes the aggregate keeps the round's updates (``Collect``) unless it folds them."""
        return Collect(self, round_)

    def aggregate_train(self, round_: int, updates: Sequence[ClientUpdate]) -> None:
        self.inner.aggregate_train(round_, updates)

    def client_plugins(self) -> list[ClientPlugin]:
        return self.inner.client_plugins()

    def evaluation_state(self) -> TensorDict:
        return self.inner.evaluation_state()

    def export(self, folder: Path) -> list[str]:
        return self.inner.export(folder)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), **{name: getattr(self, name) for name in self.STATE}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        for name in self.STATE:
            setattr(self, name, state[name])


def combined(updates: Sequence[ClientUpdate], delta: TensorDict, name: str) -> ClientUpdate:
    """One update standing for the round's ``updates`` (their aggregate ``delta``), weight 1, listing every
    client it combines, so a strategy that counts clients (SCAFFOLD's |S| / N) still can."""
    members = tuple(c for u in updates for c in (u.members or (u.client_id,)))
    return ClientUpdate(name, delta, 1, members=members)


def find_layer(strategy: Strategy, kind: type[W]) -> W | None:
    """The wrapper of type ``kind`` around ``strategy`` (at any depth), or None.

    Example:
        >>> from fedpeft.strategy import FedAvg
        >>> find_layer(StrategyWrapper(FedAvg(per_round=1)), StrategyWrapper) is not None
        True
    """
    while isinstance(strategy, StrategyWrapper):
        if isinstance(strategy, kind):
            return strategy
        strategy = strategy.inner
    return None
