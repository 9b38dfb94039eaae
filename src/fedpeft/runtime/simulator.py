"""The round engine: pick clients, encode what they receive, hand it to a fleet, validate what comes back,
aggregate.

Only the trainable tensors travel, as real payloads through the update pipelines (compression), so byte
counts and validation match a deployment. How the work reaches the clients is the fleet's business
(``fedpeft.fleet``): in-process, with simulated participation, or over Flower. A round is either plain (every
update decoded and validated here) or secure (the fleet sums the updates under secure aggregation and the
server sees only their mean); which one follows from the settings and the fleet given at construction.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedpeft.client.app import FitInstruction, FitReply, client_seed, derived_seed
from fedpeft.errors import ConfigError, InvalidUpdate, reading
from fedpeft.fleet.base import Delivery, Fleet, LateReply, SecureFleet, SecureResult
from fedpeft.fleet.cores import rebalance
from fedpeft.fleet.secure_round import SecureAggregation
from fedpeft.model.state import TensorDict
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.runtime.base import RoundOutcome
from fedpeft.strategy.base import Accumulator, ClientUpdate, Strategy, update_norm

log = logging.getLogger(__name__)
COST_METRICS = (
    "samples",
    "train_seconds",
    "cpu_seconds",
    "peak_mb",
    "flops",
    "dp_epsilon",
    "process_start_seconds",
    "worker_start_seconds",
    "build_seconds",
)  # (last 3: Flower nodes' own)


class Simulator:
    """Runs rounds of an initialized ``strategy`` over ``fleet``. A failing, dropped-out or late client, or an
    invalid update, drops that client for the round, not the round; a round with fewer than ``min_updates``
    valid updates is recorded as failed. With ``secure`` settings the fleet must be a ``SecureFleet``; each
    client's weight in the secure sum is ``strategy.secure_weight(num_examples[client])``.

    Example:
        >>> strategy = FedAvg(per_round=4); strategy.initialize(trainable.snapshot())  # doctest: +SKIP
        >>> sim = Simulator(strategy, LocalFleet(client), client_ids, seed=0)  # doctest: +SKIP
        >>> outcome = sim.run_round(1); outcome.bytes_up  # doctest: +SKIP
    """

    def __init__(
        self,
        strategy: Strategy,
        fleet: Fleet,
        client_ids: Sequence[str],
        *,
        seed: int,
        uplink: UpdatePipeline | None = None,
        downlink: UpdatePipeline | None = None,
        num_examples: Mapping[str, int] | None = None,
        min_updates: int = 1,
        max_update_bytes: int | None = None,
        max_update_norm: float | None = None,
        secure: SecureAggregation | None = None,
    ) -> None:
        self.strategy = strategy
        self.fleet = fleet
        self.client_ids = list(client_ids)
        self.seed = seed
        self.uplink = uplink or UpdatePipeline()
        self.downlink = downlink or UpdatePipeline()
        self.num_examples = dict(num_examples or {})
        self.min_updates = min_updates
        self.max_update_bytes = max_update_bytes
        self.max_update_norm = max_update_norm
        self.secure = secure
        self.secure_fleet: SecureFleet | None = None
        if secure is not None:
            if not isinstance(fleet, SecureFleet):
                raise ConfigError(
                    f"privacy.secure_aggregation: a {type(fleet).__name__} cannot sum updates securely;"
                    " give the simulator a SecureFleet (fedpeft.fleet.InProcessSecAgg around it)"
                )
            missing = [c for c in self.client_ids if c not in self.num_examples]
            if missing:
                raise ConfigError(f"secure aggregation weighs clients by their examples: no count for {missing[:3]}")
            self.secure_fleet = fleet
        self.rng = np.random.default_rng([seed, 0x5A3F])

    @property
    def global_state(self) -> TensorDict:
        return self.strategy.global_state

    @property
    def secure_protocol(self) -> str | None:
        """Which secure aggregation sums the rounds (the fleet's protocol), or None."""
        return None if self.secure_fleet is None else self.secure_fleet.protocol

    def state_dict(self) -> dict[str, Any]:
        """What a round checkpoint saves of the engine: its sampling stream and its fleet's state."""
        return {"rng": dict(self.rng.bit_generator.state), "fleet": self.fleet.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = dict(state["rng"])
        self.fleet.load_state_dict(state["fleet"])

    def run_round(self, round_: int, on_client: Callable[[str], None] | None = None) -> RoundOutcome:
        rebalance()  # this run's share of the cores, with the runs that started or ended since the last round
        busy = self.fleet.busy()
        available = [c for c in self.client_ids if c not in busy]
        sampled = self.strategy.configure_train(round_, available, self.rng)
        outcome = RoundOutcome(round_, sampled, [])
        fold = self.strategy.accumulator(round_)
        if not sampled:  # nobody joined (Poisson sampling): released as it is, or failed
            return self._aggregate(outcome, fold)
        shared: dict[bytes, bytes] = {}
        instructions = [self._instruction(round_, cid, outcome, shared) for cid in sampled]
        if self.secure_fleet is not None:
            return self._secure_round(instructions, outcome, on_client)
        taken = _Taken()
        in_order = InOrder(sampled, lambda cid, reply: self._take(cid, reply, outcome, fold, taken))
        start = time.perf_counter()
        delivery = self.fleet.fit(round_, instructions, on_client, in_order)
        outcome.train_seconds += time.perf_counter() - start
        in_order.flush()
        outcome.dropped.update(delivery.dropped)
        for ins in instructions:  # what the fleet kept instead of handing to the sink
            if ins.client_id in delivery.consumed:
                continue
            if ins.client_id in delivery.stragglers and isinstance(delivery.replies.get(ins.client_id), FitReply):
                if self._check(ins.client_id, delivery.replies[ins.client_id], outcome, delivery) is not None:
                    outcome.dropped[ins.client_id] = delivery.stragglers[ins.client_id]
                continue
            self._take(ins.client_id, delivery.replies.get(ins.client_id), outcome, fold, taken, delivery)
        for late in delivery.arrived:
            if (update := self._late(round_, late)) is not None:
                fold.add(self.strategy.receive(update))
                taken.accepted.append(update.client_id)
                outcome.late.append(update.client_id)
        outcome.accepted = taken.accepted
        if taken.losses:
            outcome.train_loss = float(np.mean(taken.losses))
        outcome.simulated_seconds = delivery.round_seconds(
            taken.used, any(c in outcome.dropped for c in delivery.stragglers)
        )
        return self._aggregate(outcome, fold)

    def _take(
        self,
        cid: str,
        reply: FitReply | str | None,
        outcome: RoundOutcome,
        fold: Accumulator,
        taken: _Taken,
        delivery: Delivery | None = None,
    ) -> None:
        """Validate one client's outcome and fold its update into the round's aggregate at once (its payload
        and decoded tensors are then let go)."""
        update = self._check(cid, reply, outcome, delivery)
        if update is None:
            return
        taken.used.append(cid)
        taken.accepted.append(cid)
        taken.losses.append(update.metrics.get("train_loss", float("nan")))
        fold.add(self.strategy.receive(update))

    def _secure_round(
        self, instructions: list[FitInstruction], outcome: RoundOutcome, on_client: Callable[[str], None] | None
    ) -> RoundOutcome:
        """A round the fleet sums under secure aggregation: the server gets the survivors' weighted mean and
        their metrics, never an update. The server half's seconds count as aggregation time."""
        assert self.secure_fleet is not None and self.secure is not None
        cids = [i.client_id for i in instructions]
        weights = {c: self.strategy.secure_weight(self.num_examples[c]) for c in cids}
        spec = self.strategy.uplink_spec(cids[0], {}) if cids else {}
        start = time.perf_counter()
        result = self.secure_fleet.secure_round(
            instructions, weights, spec, bound=self.secure.bound, threshold=self.secure.threshold, on_reply=on_client
        )
        outcome.train_seconds += time.perf_counter() - start - result.server_seconds
        outcome.aggregate_seconds += result.server_seconds
        self._count_secure(cids, result, outcome)
        if result.failure is not None:
            return self._failed(outcome, result.failure)
        losses = [
            result.metrics[c]["train_loss"]
            for c in cids
            if c in outcome.accepted and "train_loss" in result.metrics.get(c, {})
        ]
        if losses:
            outcome.train_loss = float(np.mean(losses))
        outcome.simulated_seconds = result.simulated_seconds
        needed = max(self.min_updates, self.secure.clients_needed(len(outcome.sampled)))
        if result.mean is None:
            return self._failed(outcome, f"{len(outcome.accepted)} masked update(s) summed, {needed} needed")
        if len(outcome.accepted) < needed:
            return self._failed(outcome, f"{len(outcome.accepted)} masked update(s) summed, {needed} needed")
        update = ClientUpdate(
            "secure-aggregate",
            result.mean,
            int(sum(weights[c] for c in result.accepted)),
            members=tuple(result.accepted),
        )
        start = time.perf_counter()
        self.strategy.aggregate_train(outcome.round, [self.strategy.receive(update)])
        outcome.aggregate_seconds += time.perf_counter() - start
        return outcome

    def _count_secure(self, cids: Sequence[str], result: SecureResult, outcome: RoundOutcome) -> None:
        """Record a secure round's per-client costs, and who was dropped or rejected."""
        outcome.accepted = list(result.accepted)
        outcome.dropped.update(result.dropped)
        outcome.rejected.update(result.rejected)
        for cid in cids:
            if cid not in result.metrics:
                continue
            metrics, cost = finite(result.metrics[cid]), outcome.clients[cid]  # (a client's claims: not trusted)
            cost["bytes_up"] = float(result.bytes_up[cid])
            cost.update({k: float(metrics[k]) for k in COST_METRICS if k in metrics})
            outcome.bytes_up += result.bytes_up[cid]
            outcome.samples += int(metrics.get("samples", 0))

    def _aggregate(self, outcome: RoundOutcome, fold: Accumulator) -> RoundOutcome:
        if len(outcome.accepted) < self.min_updates and not self.strategy.releases_every_round:
            return self._failed(outcome, f"{len(outcome.accepted)} valid update(s), {self.min_updates} needed")
        start = time.perf_counter()
        fold.finish()
        outcome.aggregate_seconds += time.perf_counter() - start
        return outcome

    @staticmethod
    def _failed(outcome: RoundOutcome, why: str) -> RoundOutcome:
        outcome.status = "failed"
        log.warning("round %d failed: %s", outcome.round, why)
        return outcome

    def _instruction(self, round_: int, cid: str, outcome: RoundOutcome, shared: dict[bytes, bytes]) -> FitInstruction:
        """What ``cid`` receives this round: the strategy's tensors through the downlink pipeline. Clients
        that receive the same bytes share one copy (``shared``, by digest), so a round's instructions hold one
        payload, not one per client."""
        tensors, config = self.strategy.downlink(round_, cid)
        seed = derived_seed(client_seed(self.seed, round_, cid), 0xD0)
        payload, _ = self.downlink.encode(tensors, seed=seed, describe=True)
        payload = shared.setdefault(hashlib.blake2b(payload, digest_size=16).digest(), payload)
        outcome.bytes_down += len(payload)
        outcome.clients[cid] = {"bytes_down": float(len(payload))}
        return FitInstruction(round_, cid, payload, config)

    def _check(
        self, cid: str, reply: FitReply | str | None, outcome: RoundOutcome, delivery: Delivery | None
    ) -> ClientUpdate | None:
        """Count and validate one client's reply into an update; None when there is none or it is rejected
        (with the reason in ``outcome``; a rejected straggler's reply is withdrawn from later rounds)."""
        if reply is None:
            return None
        if isinstance(reply, str):
            outcome.rejected[cid] = reply
            return None
        cost = outcome.clients[cid]
        outcome.bytes_up += len(reply.payload)
        cost["bytes_up"] = float(len(reply.payload))
        try:
            with reading(cid, "update"):
                check_reply(reply)
                delta = self._decode(cid, reply)
        except InvalidUpdate as exc:
            log.warning("round %d: rejected update: %s", outcome.round, exc)
            outcome.rejected[cid] = str(exc)
            if delivery is not None:
                delivery.withdraw(cid)
            return None
        outcome.samples += int(reply.metrics.get("samples", 0))
        cost.update({k: float(reply.metrics[k]) for k in COST_METRICS if k in reply.metrics})
        return ClientUpdate(cid, delta, reply.num_examples, reply.metrics)

    def _late(self, round_: int, late: LateReply) -> ClientUpdate | None:
        """A straggler's reply from an earlier round (validated then), as a discounted stale update."""
        try:
            delta = self._decode(late.reply.client_id, late.reply)
        except InvalidUpdate as exc:  # (cannot happen to a reply that passed in its own round)
            log.warning("round %d: rejected late update: %s", round_, exc)
            return None
        return ClientUpdate(
            late.reply.client_id,
            delta,
            late.reply.num_examples,
            late.reply.metrics,
            staleness=late.staleness,
            weight_scale=late.weight_scale,
        )

    def _decode(self, cid: str, reply: FitReply) -> TensorDict:
        """``cid``'s update, checked against the strategy's spec, the byte limit and the norm limit."""
        spec = self.strategy.uplink_spec(cid, reply.metrics)
        delta = self.uplink.decode(reply.payload, spec, max_bytes=self.max_update_bytes, sender=cid)
        if self.max_update_norm is not None and (norm := update_norm(delta)) > self.max_update_norm:
            raise InvalidUpdate(
                f"{cid}: update norm {norm:.3g} exceeds robustness.max_update_norm ({self.max_update_norm:g})"
            )
        return delta


@dataclass
class _Taken:
    """A round's accepted clients (late ones too), those on time, and their training losses."""

    accepted: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


class InOrder:
    """A sink that takes the clients' outcomes in ``order`` whatever order they come in (held until their
    turn), so that updates are folded in one order and a run's numbers do not depend on which worker
    finished first; ``flush`` takes what is left.

    Example:
        >>> seen = []; sink = InOrder(["a", "b"], lambda c, r: seen.append(c))
        >>> sink("b", "x"); seen
        []
        >>> sink("a", "y"); seen
        ['a', 'b']
    """

    def __init__(self, order: Sequence[str], take: Callable[[str, FitReply | str | None], None]) -> None:
        self.order, self.take, self.at = list(order), take, 0
        self.held: dict[str, FitReply | str | None] = {}

    def __call__(self, client_id: str, reply: FitReply | str | None) -> None:
        self.held[client_id] = reply
        while self.at < len(self.order) and self.order[self.at] in self.held:
            cid = self.order[self.at]
            self.take(cid, self.held.pop(cid))
            self.at += 1

    def flush(self) -> None:
        for cid in [c for c in self.order[self.at :] if c in self.held]:
            self.take(cid, self.held.pop(cid))
        self.at = len(self.order)


def check_reply(reply: FitReply) -> None:
    """What a reply claims beside its payload must be sane: a non-negative integer example count and finite
    numeric metrics (they weigh the update, count samples and pick its LoRA rank)."""
    n = reply.num_examples
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidUpdate(f"{reply.client_id}: num_examples is {n!r}, expected a non-negative integer")
    bad = set(reply.metrics) - set(finite(reply.metrics))
    if bad:
        raise InvalidUpdate(f"{reply.client_id}: metrics {sorted(bad)[:3]} are not finite numbers")


def finite(metrics: Mapping[str, object]) -> dict[str, float]:
    """The numeric, finite entries of a client's metrics (what a secure round cannot refuse, it ignores)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
