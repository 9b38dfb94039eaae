"""Simulated participation: a decorator around any fleet that makes a simulated fleet behave like a real one.

Sampled clients drop out at random (seeded by run and round); each client's tier gives it a local step budget
and a speed, and the simulated clock (download, compute, upload at the client's own speed) decides who misses
the round deadline. A straggler's reply is dropped, or (``stragglers: stale``) delivered ``late`` rounds later
with weight (1 + late)^-exponent, and its client is busy (not sampled) meanwhile. Only the simulator uses it: a
deployment's clients drop out and straggle on their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.config.schema import ParticipationConfig
from fedpeft.fleet.base import Delivery, Fleet, LateReply, OnReply, Sink
from fedpeft.fleet.profiles import ClientProfile

NO_PROFILE = ClientProfile()


class SimulatedParticipation:
    """Dropouts, step budgets, a simulated clock and stragglers around ``fleet``.

    Example:
        >>> part = ParticipationConfig(dropout=0.3, deadline_s=2.0, stragglers="stale")
        >>> fleet = SimulatedParticipation(LocalFleet(client), profiles, part, seed=0)  # doctest: +SKIP
        >>> fleet.fit(1, instructions).stragglers  # doctest: +SKIP
        {'c3': 'straggler (5.0 s > 2 s deadline): used in round 3 with weight x0.58'}
    """

    def __init__(
        self,
        fleet: Fleet,
        profiles: Mapping[str, ClientProfile] | None = None,
        participation: ParticipationConfig | None = None,
        *,
        seed: int,
    ) -> None:
        self.fleet = fleet
        self.profiles = dict(profiles or {})
        self.participation = participation or ParticipationConfig()
        self.seed = seed
        self.clocked = any(p.speed for p in self.profiles.values())
        self.pending: list[LateReply] = []  # stragglers' replies on their way to a later round

    def busy(self) -> Set[str]:
        return frozenset(p.reply.client_id for p in self.pending) | self.fleet.busy()

    def fit(
        self, round_: int, instructions: Sequence[FitInstruction], on_reply: OnReply = None, sink: Sink = None
    ) -> Delivery:
        """A clocked round (speeds, bandwidths, a deadline) keeps its replies to time them: ``sink`` is used only
        without a clock."""
        sink = None if self.clocked or self.participation.deadline_s is not None else sink
        gone = np.random.default_rng([self.seed, round_, 0xD509]).random(len(instructions)) < self.participation.dropout
        dropped, send = {}, []
        for ins, dropped_out in zip(instructions, gone):
            if dropped_out:
                dropped[ins.client_id] = "dropped out (no reply)"
                if sink is not None:
                    sink(ins.client_id, None)
                if on_reply is not None:
                    on_reply(ins.client_id)
            else:
                send.append(self._budgeted(ins))
        inner = self.fleet.fit(round_, send, on_reply, sink)
        out = replace(
            inner,
            dropped={**dropped, **inner.dropped},
            withdraw=self._withdraw,
            clock={} if self.clocked else None,
            deadline=self.participation.deadline_s,
        )
        for ins in send:
            reply = inner.replies.get(ins.client_id)
            if isinstance(reply, FitReply):
                self._clock(round_, ins, reply, out)
        out.arrived = inner.arrived + [p for p in self.pending if p.due == round_]
        self.pending = [p for p in self.pending if p.due != round_]
        return out

    def _budgeted(self, ins: FitInstruction) -> FitInstruction:
        steps = self.profiles.get(ins.client_id, NO_PROFILE).local_steps
        return ins if steps is None else replace(ins, config={**ins.config, "local_steps": steps})

    def _clock(self, round_: int, ins: FitInstruction, reply: FitReply, out: Delivery) -> None:
        """Time the client's round on the simulated clock; a straggler is dropped or held for a later round."""
        profile = self.profiles.get(ins.client_id, NO_PROFILE)
        samples = reply.metrics.get("samples", 0)
        samples = int(samples) if isinstance(samples, (int, float)) and math.isfinite(samples) else 0
        seconds = profile.seconds(samples, len(ins.payload), len(reply.payload))
        if out.clock is not None:
            out.clock[ins.client_id] = seconds or 0.0
        late = self.rounds_late(seconds)
        if not late:
            return
        p = self.participation
        why = f"straggler ({seconds:.1f} s > {p.deadline_s:g} s deadline)"
        if p.stragglers == "stale" and late <= p.max_staleness:
            weight = (1 + late) ** -p.staleness_exponent
            self.pending.append(LateReply(reply, round_ + late, late, weight))
            out.stragglers[ins.client_id] = f"{why}: used in round {round_ + late} with weight x{weight:.2f}"
        else:
            out.stragglers[ins.client_id] = f"{why}: dropped"

    def rounds_late(self, seconds: float | None) -> int:
        """Rounds a reply taking ``seconds`` arrives after its own (0: in time, or no deadline)."""
        deadline = self.participation.deadline_s
        if deadline is None or seconds is None or seconds <= deadline:
            return 0
        return math.ceil(seconds / deadline) - 1

    def _withdraw(self, client_id: str) -> None:
        self.pending = [p for p in self.pending if p.reply.client_id != client_id]

    def state_dict(self) -> dict[str, Any]:
        """The pending late replies as plain data (payload bytes as a uint8 tensor), and the inner fleet's."""
        pending = [
            {
                "due": p.due,
                "staleness": p.staleness,
                "weight_scale": p.weight_scale,
                "client_id": p.reply.client_id,
                "num_examples": p.reply.num_examples,
                "metrics": dict(p.reply.metrics),
                "payload": torch.from_numpy(np.frombuffer(p.reply.payload, dtype=np.uint8).copy()),
            }
            for p in self.pending
        ]
        return {"pending": pending, "fleet": self.fleet.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pending = [
            LateReply(
                FitReply(
                    str(p["client_id"]),
                    p["payload"].numpy().tobytes(),
                    int(p["num_examples"]),
                    {k: float(v) for k, v in p["metrics"].items()},
                ),
                int(p["due"]),
                int(p["staleness"]),
                float(p["weight_scale"]),
            )
            for p in state["pending"]
        ]
        self.fleet.load_state_dict(state["fleet"])
