"""The in-process simulator: every sampled client trains in turn on one shared frozen base model.

Only the trainable tensors are swapped in and out, and they cross the client/server boundary as real
payloads through the client's update pipelines (compression), so byte counts and validation match a
deployment. Client resources (ranks, step budgets, speeds) and participation faults (dropouts, stragglers
past a deadline) are simulated here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np

from fedpeft.client.app import FederatedClient, FitInstruction, FitReply, client_seed, derived_seed
from fedpeft.config.schema import ParticipationConfig
from fedpeft.errors import InvalidUpdate
from fedpeft.model.state import TensorDict
from fedpeft.privacy.secagg import SecAggError
from fedpeft.runtime.base import RoundOutcome
from fedpeft.runtime.fleet import Fleet, LocalFleet
from fedpeft.runtime.profiles import ClientProfile
from fedpeft.runtime.secure_round import SecureAggregation, SecureRound
from fedpeft.strategy.base import ClientUpdate, Strategy, update_norm

log = logging.getLogger(__name__)
NO_PROFILE = ClientProfile()
COST_METRICS = ("samples", "train_seconds", "cpu_seconds", "peak_mb", "flops", "dp_epsilon",
                "process_start_seconds", "worker_start_seconds", "build_seconds")  # (last 3: Flower nodes' own)


class Simulator:
    """Runs rounds in-process. A failing, dropped-out or late client, or an invalid update, drops that client
    for the round, not the round; a round with fewer than ``min_updates`` valid updates is recorded as failed.

    Example:
        >>> sim = Simulator(client, FedAvg(per_round=4), client_ids, initial_state, seed=0)  # doctest: +SKIP
        >>> outcome = sim.run_round(1); outcome.bytes_up  # doctest: +SKIP
    """

    STATE = ("rng_state", "late_updates")  # what a round checkpoint saves (with the strategy's STATE)

    def __init__(
        self,
        client: FederatedClient,
        strategy: Strategy,
        client_ids: Sequence[str],
        *,
        seed: int,
        min_updates: int = 1,
        max_update_bytes: int | None = None,
        max_update_norm: float | None = None,
        profiles: Mapping[str, ClientProfile] | None = None,
        participation: ParticipationConfig | None = None,
        fleet: Fleet | None = None,
        secure: SecureAggregation | None = None,
    ) -> None:
        self.client = client
        self.fleet: Fleet = fleet or LocalFleet(client)  # how instructions reach the clients
        self.strategy = strategy
        self.client_ids = list(client_ids)
        self.min_updates = min_updates
        self.max_update_bytes = max_update_bytes
        self.max_update_norm = max_update_norm
        self.secure = secure  # secure aggregation, when configured
        self.profiles = dict(profiles or {})
        self.participation = participation or ParticipationConfig()
        self.seed = seed
        self.rng = np.random.default_rng([seed, 0x5A3F])
        self.pending: list[tuple[int, ClientUpdate]] = []  # (round it arrives, late update)

    def state_dict(self) -> dict[str, Any]:
        """What a round checkpoint saves: the sampling generator and stragglers' pending updates."""
        return {name: getattr(self, name) for name in self.STATE}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in self.STATE:
            setattr(self, name, state[name])

    @property
    def rng_state(self) -> dict:
        return dict(self.rng.bit_generator.state)

    @rng_state.setter
    def rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    @property
    def late_updates(self) -> list[dict]:
        """The stragglers' updates waiting for a later round, as plain data."""
        return [{"due": due, **{f.name: getattr(u, f.name) for f in fields(u)}} for due, u in self.pending]

    @late_updates.setter
    def late_updates(self, value: list[dict]) -> None:
        self.pending = [(int(v.pop("due")), ClientUpdate(**{**v, "members": tuple(v["members"])})) for v in value]

    @property
    def secured_by_fleet(self) -> bool:
        """Secure aggregation is on and the fleet runs it itself (Flower's SecAgg+)."""
        return self.secure is not None and hasattr(self.fleet, "secure_round")

    def _secure_weights(self, cids: Sequence[str]) -> dict[str, float]:
        """Each client's weight in a secure sum: 1 under client-level DP, else its example count."""
        return {c: self.strategy.secure_weight(len(self.client.data[c])) for c in cids}

    @property
    def global_state(self) -> TensorDict:
        return self.strategy.global_state

    def run_round(self, round_: int, on_client: Callable[[str], None] | None = None) -> RoundOutcome:
        busy = {u.client_id for _, u in self.pending}
        available = [c for c in self.client_ids if c not in busy]
        sampled = self.strategy.configure_train(round_, available, self.rng)
        outcome = RoundOutcome(round_, sampled, [])
        secure = None
        by_fleet = self.secured_by_fleet
        if self.secure is not None and sampled and not by_fleet:  # key exchange and shares: aggregation time
            start = time.perf_counter()
            spec = self.strategy.uplink_spec(sampled[0], {})
            secure = self.secure.start(sampled, self._secure_weights(sampled), spec)
            outcome.aggregate_seconds += time.perf_counter() - start
        gone = np.random.default_rng([self.seed, round_, 0xD509]).random(len(sampled)) < self.participation.dropout
        updates: list[ClientUpdate] = []
        losses: list[float] = []
        times: list[float] = []
        instructions = []
        for cid, dropped_out in zip(sampled, gone):
            ins = self._instruction(round_, cid, outcome)
            if dropped_out:
                outcome.dropped[cid] = "dropped out (no reply)"
                if on_client is not None:
                    on_client(cid)
            else:
                instructions.append(ins)
        if by_fleet:
            return self._fleet_secure_round(instructions, outcome)
        start = time.perf_counter()
        replies = self.fleet.fit(instructions, on_client)
        outcome.train_seconds += time.perf_counter() - start
        for ins in instructions:
            update, seconds = self._received(round_, ins, replies[ins.client_id], outcome, secure)
            if update is None:
                continue
            late = self._rounds_late(seconds)
            if late:
                self._straggler(round_, update, late, seconds, outcome)
                continue
            times.append(seconds or 0.0)
            if secure is None:  # (a secure round's server half already holds the masked update)
                updates.append(self.strategy.receive(update))
            losses.append(update.metrics.get("train_loss", float("nan")))
        for due, update in [x for x in self.pending if x[0] == round_]:
            self.pending.remove((due, update))
            updates.append(self.strategy.receive(update))
            outcome.late.append(update.client_id)
        outcome.accepted = [u.client_id for u in updates]
        if secure is not None:
            outcome.accepted = secure.received
            start = time.perf_counter()
            try:
                updates = [self.strategy.receive(secure.finish())]
                outcome.aggregate_seconds += time.perf_counter() - start
            except SecAggError as exc:
                outcome.status = "failed"
                log.warning("round %d failed: %s", round_, exc)
                return outcome
        if losses:
            outcome.train_loss = float(np.mean(losses))
        if self.profiles and any(p.speed for p in self.profiles.values()):
            deadline = self.participation.deadline_s
            outcome.simulated_seconds = deadline if deadline and any(
                "straggler" in r for r in outcome.dropped.values()) else max(times, default=0.0)
        if len(outcome.accepted) < self.min_updates:
            outcome.status = "failed"
            log.warning("round %d failed: %d valid update(s), %d needed", round_, len(outcome.accepted),
                        self.min_updates)
            return outcome
        start = time.perf_counter()
        self.strategy.aggregate_train(round_, updates)
        outcome.aggregate_seconds += time.perf_counter() - start
        return outcome

    def _fleet_secure_round(self, instructions: list[FitInstruction], outcome: RoundOutcome) -> RoundOutcome:
        """A round whose updates the fleet sums under its own secure aggregation (Flower's SecAgg+): the
        server gets the survivors' weighted mean and their metrics, never an update."""
        assert self.secure is not None
        cids = [i.client_id for i in instructions]
        weights = self._secure_weights(cids)
        spec = self.strategy.uplink_spec(cids[0], {}) if cids else {}
        start = time.perf_counter()
        result = self.fleet.secure_round(  # type: ignore[attr-defined]
            instructions, weights, spec, bound=self.secure.bound, threshold=self.secure.threshold)
        outcome.train_seconds += time.perf_counter() - start
        outcome.accepted = result.accepted
        words = sum(math.prod(shape) for shape, _ in spec.values())
        for cid in cids:
            if cid not in result.accepted:
                outcome.dropped[cid] = "no masked update reached the SecAgg+ sum (dropped out or too late)"
                continue
            metrics = result.metrics.get(cid, {})
            outcome.clients[cid].update({k: metrics[k] for k in COST_METRICS if k in metrics})
            outcome.clients[cid]["bytes_up"] = float(8 * words)  # one 64-bit masked word per coordinate
            outcome.bytes_up += 8 * words
            outcome.samples += int(metrics.get("samples", 0))
        losses = [result.metrics[c]["train_loss"] for c in result.accepted if "train_loss" in result.metrics.get(c, {})]
        if losses:
            outcome.train_loss = float(np.mean(losses))
        needed = max(self.min_updates, self.secure.clients_needed(len(outcome.sampled)))
        if result.mean is None or len(result.accepted) < needed:
            outcome.status = "failed"
            log.warning("round %d failed: %d masked update(s) summed, %d needed", outcome.round,
                        len(result.accepted), needed)
            return outcome
        update = ClientUpdate("secure-aggregate", result.mean, int(sum(weights[c] for c in result.accepted)),
                              members=tuple(result.accepted))
        start = time.perf_counter()
        self.strategy.aggregate_train(outcome.round, [self.strategy.receive(update)])
        outcome.aggregate_seconds += time.perf_counter() - start
        return outcome

    def _instruction(self, round_: int, cid: str, outcome: RoundOutcome) -> FitInstruction:
        """What ``cid`` receives this round: the strategy's tensors through the downlink pipeline."""
        profile = self.profiles.get(cid, NO_PROFILE)
        tensors, config = self.strategy.downlink(round_, cid)
        if profile.local_steps is not None:
            config["local_steps"] = profile.local_steps
        seed = derived_seed(client_seed(self.seed, round_, cid), 0xD0)
        payload, _ = self.client.downlink.encode(tensors, seed=seed, describe=True)
        outcome.bytes_down += len(payload)
        outcome.clients[cid] = {"bytes_down": float(len(payload))}
        return FitInstruction(round_, cid, payload, config)

    def _received(
        self, round_: int, ins: FitInstruction, reply: FitReply | str, outcome: RoundOutcome,
        secure: SecureRound | None = None,
    ) -> tuple[ClientUpdate | None, float | None]:
        """Validate one client's reply into an update; None when it is lost, with the reason in ``outcome``.
        Under secure aggregation the client masks its update and the server half of the protocol takes the
        masked payload; the returned update then carries no tensors."""
        cid, payload = ins.client_id, ins.payload
        if isinstance(reply, str):
            outcome.rejected[cid] = reply
            return None, None
        profile, cost = self.profiles.get(cid, NO_PROFILE), outcome.clients[cid]
        spec = self.strategy.uplink_spec(cid, reply.metrics)
        if secure is not None:  # the client's half: mask its own (decoded) update, as part of its work
            start = time.perf_counter()
            try:
                reply = replace(reply, payload=secure.mask(cid, self.client.uplink.decode(reply.payload, spec)))
            except InvalidUpdate as exc:
                outcome.rejected[cid] = f"client failed: {exc}"
                return None, None
            finally:
                outcome.train_seconds += time.perf_counter() - start
        outcome.bytes_up += len(reply.payload)
        outcome.samples += int(reply.metrics.get("samples", 0))
        cost["bytes_up"] = float(len(reply.payload))
        cost.update({k: float(reply.metrics[k]) for k in COST_METRICS if k in reply.metrics})
        seconds = profile.seconds(int(reply.metrics.get("samples", 0)), len(payload), len(reply.payload))
        if secure is not None:  # the server's half: a masked vector of the right size is all it can check
            if not self._rounds_late(seconds):  # a straggler past the deadline counts as dropped out
                try:
                    secure.receive(cid, reply.payload)
                except InvalidUpdate as exc:
                    log.warning("round %d: rejected update: %s", round_, exc)
                    outcome.rejected[cid] = str(exc)
                    return None, seconds
            return ClientUpdate(cid, {}, reply.num_examples, reply.metrics), seconds
        try:
            delta = self.client.uplink.decode(reply.payload, spec, max_bytes=self.max_update_bytes, sender=cid)
            if self.max_update_norm is not None and (norm := update_norm(delta)) > self.max_update_norm:
                raise InvalidUpdate(f"{cid}: update norm {norm:.3g} exceeds robustness.max_update_norm "
                                    f"({self.max_update_norm:g})")
        except InvalidUpdate as exc:
            log.warning("round %d: rejected update: %s", round_, exc)
            outcome.rejected[cid] = str(exc)
            return None, seconds
        return ClientUpdate(cid, delta, reply.num_examples, reply.metrics), seconds

    def _rounds_late(self, seconds: float | None) -> int:
        deadline = self.participation.deadline_s
        if deadline is None or seconds is None or seconds <= deadline:
            return 0
        return math.ceil(seconds / deadline) - 1

    def _straggler(self, round_: int, update: ClientUpdate, late: int, seconds: float | None,
                   outcome: RoundOutcome) -> None:
        p = self.participation
        if p.stragglers == "stale" and late <= p.max_staleness:
            weight = (1 + late) ** -p.staleness_exponent
            self.pending.append((round_ + late, replace(update, staleness=late, weight_scale=weight)))
            outcome.dropped[update.client_id] = (
                f"straggler ({seconds:.1f} s > {p.deadline_s:g} s deadline): used in round {round_ + late} "
                f"with weight x{weight:.2f}"
            )
        else:
            outcome.dropped[update.client_id] = f"straggler ({seconds:.1f} s > {p.deadline_s:g} s deadline): dropped"
