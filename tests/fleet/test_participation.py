"""Simulated participation around a fleet: seeded dropouts, step budgets, the clock, stragglers held for later."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.config.schema import ParticipationConfig
from fedpeft.fleet import Delivery, LocalFleet, SimulatedParticipation
from fedpeft.fleet.profiles import ClientProfile
from fedpeft.pipeline import codec
from fedpeft.runtime.checkpoint import Checkpoint

IDS = [f"c{i}" for i in range(6)]


class Echo(LocalFleet):
    """Every client trains on 8 examples and sends back a tiny update; remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[FitInstruction] = []

    def fit(self, round_: int, instructions: Sequence[FitInstruction], on_reply=None, sink=None) -> Delivery:  # type: ignore[no-untyped-def, override]
        self.asked += instructions
        payload = codec.encode({"w": torch.full((3,), float(round_))})
        return Delivery({i.client_id: FitReply(i.client_id, payload, 8, {"samples": 8.0}) for i in instructions})


def instructions(round_: int, ids: Sequence[str] = IDS) -> list[FitInstruction]:
    return [FitInstruction(round_, c, b"x" * 10, {"lr": 0.1}) for c in ids]


def slow_c0(**part: float | str) -> SimulatedParticipation:
    """c0 trains at 1 example/s (8 s a round), the others at 100/s."""
    profiles = {c: ClientProfile(speed=1.0 if c == "c0" else 100.0) for c in IDS}
    return SimulatedParticipation(Echo(), profiles, ParticipationConfig(**part), seed=0)  # type: ignore[arg-type]


def test_the_same_seed_drops_the_same_clients_and_they_get_no_work() -> None:
    a, b = (SimulatedParticipation(Echo(), participation=ParticipationConfig(dropout=0.5), seed=3) for _ in "ab")
    da, db = a.fit(1, instructions(1)), b.fit(1, instructions(1))
    assert da.dropped == db.dropped and 0 < len(da.dropped) < 6
    assert set(da.dropped).isdisjoint(da.replies) and set(da.dropped) | set(da.replies) == set(IDS)
    assert {i.client_id for i in a.fleet.asked} == set(da.replies)  # type: ignore[attr-defined]
    other = SimulatedParticipation(Echo(), participation=ParticipationConfig(dropout=0.5), seed=4).fit(
        1, instructions(1)
    )
    assert other.dropped != da.dropped or other.replies.keys() != da.replies.keys()


def test_step_budgets_are_added_to_the_instruction() -> None:
    fleet = SimulatedParticipation(Echo(), {"c1": ClientProfile(local_steps=2)}, seed=0)
    fleet.fit(1, instructions(1, ["c0", "c1"]))
    asked = {i.client_id: i.config for i in fleet.fleet.asked}  # type: ignore[attr-defined]
    assert asked == {"c0": {"lr": 0.1}, "c1": {"lr": 0.1, "local_steps": 2}}


def test_a_dropped_straggler_costs_the_deadline_on_the_clock() -> None:
    fleet = slow_c0(deadline_s=2.0)
    out = fleet.fit(1, instructions(1))
    assert out.stragglers == {"c0": "straggler (8.0 s > 2 s deadline): dropped"} and "c0" in out.replies
    assert out.clock is not None and out.clock["c0"] == 8.0 and out.clock["c1"] == pytest.approx(0.08)
    assert out.round_seconds(["c1", "c2"], stragglers_counted=True) == 2.0
    assert fleet.pending == [] and fleet.busy() == frozenset()


def test_a_stale_reply_arrives_k_rounds_later_discounted_and_its_client_is_busy_meanwhile() -> None:
    fleet = slow_c0(deadline_s=3.0, stragglers="stale", staleness_exponent=0.5)
    first = fleet.fit(1, instructions(1))  # 8 s at a 3 s deadline: ceil(8 / 3) - 1 = 2 rounds late
    assert first.stragglers["c0"] == "straggler (8.0 s > 3 s deadline): used in round 3 with weight x0.58"
    assert fleet.busy() == {"c0"}
    second = fleet.fit(2, instructions(2, IDS[1:]))
    assert second.arrived == [] and fleet.busy() == {"c0"}
    third = fleet.fit(3, instructions(3, IDS[1:]))
    (late,) = third.arrived
    assert late.reply.client_id == "c0" and late.due == 3 and late.staleness == 2
    assert late.weight_scale == pytest.approx(3**-0.5)
    assert codec.decode(late.reply.payload, {"w": ((3,), torch.float32)})["w"].tolist() == [1.0, 1.0, 1.0]
    assert fleet.busy() == frozenset() and fleet.pending == []


def test_too_late_for_max_staleness_is_dropped_and_a_withdrawn_reply_never_arrives() -> None:
    fleet = slow_c0(deadline_s=1.0, stragglers="stale", max_staleness=4)  # 8 s: 7 rounds late
    assert fleet.fit(1, instructions(1)).stragglers["c0"].endswith("dropped") and fleet.pending == []
    fleet = slow_c0(deadline_s=3.0, stragglers="stale")
    fleet.fit(1, instructions(1)).withdraw("c0")
    assert fleet.pending == [] and fleet.busy() == frozenset()


def test_pending_replies_survive_a_checkpoint(tmp_path: Path) -> None:
    fleet = slow_c0(deadline_s=3.0, stragglers="stale")
    fleet.fit(1, instructions(1))
    ck = Checkpoint(tmp_path)
    ck.save(1, {"fleet": fleet.state_dict()}, clients={})
    resumed = slow_c0(deadline_s=3.0, stragglers="stale")
    resumed.load_state_dict(ck.load()["fleet"])
    assert resumed.pending == fleet.pending and resumed.busy() == {"c0"}
    assert resumed.fit(3, instructions(3, IDS[1:])).arrived == fleet.fit(3, instructions(3, IDS[1:])).arrived
