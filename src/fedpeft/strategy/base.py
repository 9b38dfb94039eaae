"""What a strategy is: pick clients, say what each receives, turn their updates into the next global state.

The base class does what every strategy shares: client sampling, the global trainable state, cutting what a
client receives and sends to its LoRA rank (and padding it back), and the validation spec of each uplink.
A strategy overrides ``aggregate`` (a pure function of the state and the updates), and where it needs to,
``downlink`` / ``uplink_spec`` (extra tensors) and ``client_plugins`` (its client half).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from fedpeft.client.plugins import ClientPlugin, RankMask, Scalar
from fedpeft.config.strategies import StrategySection
from fedpeft.model.lora_factors import Spec, factor_names, lora_pairs, pad, truncate, truncate_spec
from fedpeft.model.state import TensorDict
from fedpeft.registry import Registry

T = TypeVar("T")
C = TypeVar("C", bound=StrategySection)


@dataclass(frozen=True)
class ClientUpdate:
    """A decoded, validated client update: tensor deltas, the client's example count and metrics.

    ``staleness`` counts the rounds a late update arrived after the round it trained for; its weight in an
    aggregate is ``num_examples * weight_scale`` (the staleness discount). ``members`` lists the clients whose
    mean this update is, when secure aggregation or a wrapper combined them before the server saw any one.
    """

    client_id: str
    delta: TensorDict
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)
    staleness: int = 0
    weight_scale: float = 1.0
    members: tuple[str, ...] = ()
    stands_for: int | None = None  # clients this update counts as (None: its members, or 1)

    @property
    def clients(self) -> int:
        """How many clients this update counts as: under central DP the expected cohort (the actual count
        would reveal who joined), else its members (a combined update) or 1."""
        return self.stands_for if self.stands_for is not None else len(self.members) or 1

    @property
    def weight(self) -> float:
        return self.num_examples * self.weight_scale


def weighted_mean(updates: Sequence[ClientUpdate], names: Sequence[str] | None = None) -> TensorDict:
    """sum_i w_i * delta_i / sum_i w_i over ``names`` (default: the first update's), in float32; one update's
    mean is that update. The same sums, in the same order, as folding them one by one (``MeanFold``).

    Example:
        >>> ups = [ClientUpdate("a", {"w": torch.tensor([1.0])}, 1), ClientUpdate("b", {"w": torch.tensor([4.0])}, 3)]
        >>> weighted_mean(ups)["w"].tolist()
        [3.25]
    """
    keys = list(updates[0].delta if names is None else names)
    if len(updates) == 1:
        return {name: updates[0].delta[name].float() for name in keys}
    fold = MeanFold(None, 0)
    for u in updates:
        fold.add(u, keys)
    return fold.mean()


class MeanFold:
    """A round's updates folded into their weighted sum as they arrive, so that memory does not grow with
    the clients per round; ``finish`` hands ``strategy`` one update, their weighted mean, standing for all
    of them (``members``). For strategies whose aggregate reads the updates only through ``weighted_mean``.

    Example:
        >>> fold = MeanFold(None, 1)
        >>> for c, v, n in (("a", 1.0, 1), ("b", 4.0, 3)):
        ...     fold.add(ClientUpdate(c, {"w": torch.tensor([v])}, n))
        >>> fold.mean()["w"].tolist(), fold.members
        ([3.25], ['a', 'b'])
    """

    def __init__(self, strategy: Strategy | None, round_: int) -> None:
        self.strategy, self.round = strategy, round_
        self.sums: TensorDict = {}
        self.weight = 0.0
        self.members: list[str] = []
        self.first: ClientUpdate | None = None

    def add(self, update: ClientUpdate, names: Sequence[str] | None = None) -> None:
        self.first = update if not self.members else None
        for name in update.delta if names is None else names:
            acc = self.sums.get(name)
            if acc is None:
                acc = self.sums[name] = torch.zeros_like(update.delta[name], dtype=torch.float32)
            acc.add_(update.delta[name].float(), alpha=update.weight)
        self.weight += update.weight
        self.members.extend(update.members or (update.client_id,))

    def mean(self) -> TensorDict:
        return {name: acc / self.weight for name, acc in self.sums.items()}

    def finish(self) -> None:
        assert self.strategy is not None
        if self.first is not None or not self.members:  # one update (it is its own mean) or none
            self.strategy.aggregate_train(self.round, [] if self.first is None else [self.first])
            return
        mean = ClientUpdate("mean", self.mean(), 1, weight_scale=self.weight, members=tuple(self.members))
        self.strategy.aggregate_train(self.round, [mean])


class Collect:
    """A round's updates kept until it ends, for a strategy that needs them all at once (a median, Krum,
    FLoRA's stacking, rank-aware or per-client rules)."""

    def __init__(self, strategy: Strategy, round_: int) -> None:
        self.strategy, self.round = strategy, round_
        self.updates: list[ClientUpdate] = []

    def add(self, update: ClientUpdate) -> None:
        self.updates.append(update)

    def finish(self) -> None:
        self.strategy.aggregate_train(self.round, self.updates)


class Accumulator(Protocol):
    """Where a round's updates go as they arrive (``Strategy.accumulator``); ``finish`` aggregates the round."""

    def add(self, update: ClientUpdate) -> None: ...

    def finish(self) -> None: ...


def update_norm(delta: TensorDict) -> float:
    """The L2 norm of all of an update's tensors together."""
    return math.sqrt(sum(float(t.float().pow(2).sum()) for t in delta.values()))


def bound_norm(delta: TensorDict, bound: float) -> TensorDict:
    """Scale ``delta`` down so its L2 norm is at most ``bound`` (unchanged when it already is).

    Example:
        >>> round(update_norm(bound_norm({"w": torch.tensor([3.0, 4.0])}, 1.0)), 6)
        1.0
    """
    norm = update_norm(delta)
    if norm <= bound or norm == 0.0:
        return delta
    return {n: t * (bound / norm) for n, t in delta.items()}


def step(state: TensorDict, direction: TensorDict, lr: float) -> TensorDict:
    """state + lr * direction on the names in ``direction``; other tensors are kept; dtypes are kept."""
    return {n: (w.float() + lr * direction[n]).to(w.dtype) if n in direction else w for n, w in state.items()}


def sample_clients(client_ids: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
    """k clients uniformly without replacement (all of them when k >= len), in a stable order."""
    if k >= len(client_ids):
        return list(client_ids)
    chosen = np.sort(rng.choice(len(client_ids), size=k, replace=False))
    return [client_ids[i] for i in chosen]


class Strategy:
    """The server's algorithm. Cross-cutting concerns (DP, compression) wrap it instead of living in it.

    Example:
        >>> from fedpeft.strategy import FedAvg
        >>> s = FedAvg(per_round=2)
        >>> s.initialize({"w": torch.zeros(1)})
        >>> s.aggregate_train(1, [ClientUpdate("a", {"w": torch.tensor([2.0])}, 1)]); s.global_state["w"].tolist()
        [2.0]
    """

    STATE: tuple[str, ...] = ("global_state", "_past")  # what a round checkpoint saves (runtime/checkpoint.py)

    personal_names: frozenset[str] = frozenset()  # trainable tensors that stay on clients
    streams: bool = False  # its aggregate reads the updates only through their weighted mean (``MeanFold``)

    def __init__(self, per_round: int, server_lr: float = 1.0) -> None:
        self.per_round = per_round
        self.server_lr = server_lr
        self.global_state: TensorDict = {}
        self.ranks: dict[str, int] = {}
        self.keep_past = 0  # rounds of past global states kept for late (stale) updates
        self._past: dict[int, TensorDict] = {}

    def initialize(
        self,
        state: TensorDict,
        ranks: Mapping[str, int] | None = None,
        num_clients: int | None = None,
        keep_past: int = 0,
    ) -> None:
        """Start from ``state`` (the model's trainable tensors); ``ranks`` gives clients their LoRA rank;
        ``keep_past`` rounds of global states are kept for late (stale) updates."""
        self.keep_past = keep_past
        self.global_state = {k: v.detach().clone() for k, v in state.items()}
        self.initial_state = {k: v.clone() for k, v in self.global_state.items()}
        self.pairs = lora_pairs(state)
        self.ranks = dict(ranks or {})
        self.num_clients = num_clients
        self.spec: Spec = {n: (tuple(t.shape), t.dtype) for n, t in state.items()}

    # -- one round --------------------------------------------------------------------------------------
    @property
    def releases_every_round(self) -> bool:
        """Whether a round is aggregated whatever arrives, even nothing (client-level DP with Poisson sampling:
        skipping a thin round would reveal how many clients joined it). Otherwise a round with fewer than
        ``strategy.min_updates`` valid updates fails."""
        return False

    def configure_train(self, round_: int, client_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Choose the clients that train this round."""
        return sample_clients(client_ids, self.per_round, rng)

    def secure_weight(self, num_examples: int) -> float:
        """A client's weight in a secure sum (its example count; 1 under client-level DP)."""
        return float(num_examples)

    def rank(self, client_id: str) -> int | None:
        return self.ranks.get(client_id)

    def shared(self, tensors: Mapping[str, T]) -> dict[str, T]:
        return {n: t for n, t in tensors.items() if n not in self.personal_names}

    def downlink(self, round_: int, client_id: str) -> tuple[TensorDict, dict[str, Scalar]]:
        """The tensors and config one client receives: the shared global state at the client's rank."""
        tensors, config = self.shared(self.global_state), dict[str, Scalar]()
        rank = self.rank(client_id)
        if rank is not None:
            tensors, config["rank"] = truncate(tensors, self.pairs, rank), rank
        return tensors, config

    @property
    def uses_ranks(self) -> bool:
        return bool(self.ranks)

    @property
    def full_rank(self) -> int:
        return int(self.global_state[self.pairs[0].b].shape[1]) if self.pairs else 0

    def update_rank(self, update: ClientUpdate) -> int:
        """The LoRA rank ``update``'s client trained at (as it reports it)."""
        return int(update.metrics.get("rank", self.full_rank)) if self.uses_ranks else self.full_rank

    def start_state(self, update: ClientUpdate, round_: int) -> TensorDict:
        """The global state ``update``'s client started from, at its rank (zero beyond it)."""
        state = self._past.get(round_ - update.staleness, self.global_state) if update.staleness else self.global_state
        return pad(truncate(state, self.pairs, self.update_rank(update)), self.pairs, self.full_rank)

    def step_non_factors(self, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        """FedAvg's step on every tensor but the LoRA factors (heads, norms), for strategies that aggregate
        the factors their own way."""
        others = [n for n in state if n not in factor_names(self.pairs)]
        return step(state, weighted_mean(updates, others), self.server_lr) if others else dict(state)

    def uplink_spec(self, client_id: str, metrics: Mapping[str, float]) -> Spec:
        """Names, shapes and dtypes a client's update must have; a rank may only shrink (self-pruning)."""
        spec = self.shared(self.spec)
        rank = self.rank(client_id)
        if rank is not None:
            spec = truncate_spec(spec, self.pairs, min(rank, int(metrics.get("rank", rank))))
        return spec

    def receive(self, update: ClientUpdate) -> ClientUpdate:
        """Undo the rank cut: pad a low-rank client's factors with zeros to the model's rank."""
        if not self.uses_ranks or not self.pairs:
            return update
        return replace(update, delta=pad(update.delta, self.pairs, self.full_rank))

    def accumulator(self, round_: int) -> Accumulator:
        """Where the round's updates go as they arrive: folded into their mean (``streams``) or kept."""
        return MeanFold(self, round_) if self.streams else Collect(self, round_)

    def aggregate_train(self, round_: int, updates: Sequence[ClientUpdate]) -> None:
        if self.keep_past:
            self._past[round_] = self.global_state
            self._past = {r: s for r, s in self._past.items() if r > round_ - self.keep_past - 1}
        self.global_state = self.aggregate(round_, self.global_state, updates)

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        """The next global state from the current one and the round's (padded) updates."""
        raise NotImplementedError

    # -- other hooks -----------------------------------------------------------------------------------
    def client_plugins(self) -> list[ClientPlugin]:
        """The client half of the strategy, run inside every client's fit."""
        return [RankMask()] if self.uses_ranks else []

    def evaluation_state(self) -> TensorDict:
        """The trainable state the global model is evaluated with."""
        return self.global_state

    def export(self, folder: Path) -> list[str]:
        """Write what a saved adapter needs beyond the trainable tensors; return the file names."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """What a round checkpoint saves: the attributes named in ``STATE``."""
        return {name: getattr(self, name) for name in self.STATE}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in self.STATE:
            setattr(self, name, state[name])


@dataclass(frozen=True)
class StrategySpec(Generic[C]):
    """How to build a strategy from its config section (with the clients per round and the model), its config
    class (which carries the strategy's capability flags), and what it changes in the model before training.

    Example:
        >>> from fedpeft.strategy import STRATEGIES
        >>> STRATEGIES.get("ffa_lora").prepare_model.__name__, STRATEGIES.get("scaffold").config.mixed_ranks
        ('freeze_lora_a', False)
    """

    build: Callable[[C, int, nn.Module], Strategy]
    config: type[C]
    prepare_model: Callable[[nn.Module], None] | None = None


STRATEGIES: Registry[StrategySpec[Any]] = Registry("strategy")
