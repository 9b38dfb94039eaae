"""What a strategy is: pick clients for a round, turn their updates into the next global state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fedpeft.config.schema import RunConfig
from fedpeft.model.state import TensorDict
from fedpeft.registry import Registry


@dataclass(frozen=True)
class ClientUpdate:
    """A decoded, validated client update: deltas of the trainable tensors and the client's weight."""

    client_id: str
    delta: TensorDict
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)


class Strategy(Protocol):
    """The server's algorithm. Cross-cutting concerns (DP, compression) wrap it instead of living in it."""

    def configure_train(self, round_: int, client_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Choose the clients that train this round."""
        ...

    def aggregate_train(self, round_: int, global_state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        """Return the new global trainable state."""
        ...


StrategyFactory = Callable[[RunConfig], Strategy]
STRATEGIES: Registry[StrategyFactory] = Registry("strategy")


def sample_clients(client_ids: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
    """k clients uniformly without replacement (all of them when k >= len), in a stable order."""
    if k >= len(client_ids):
        return list(client_ids)
    chosen = np.sort(rng.choice(len(client_ids), size=k, replace=False))
    return [client_ids[i] for i in chosen]
