"""Client resources and faults in the simulator: dropouts, stragglers (dropped or stale), step budgets."""

from __future__ import annotations

import pytest
import torch

from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
from fedpeft.config.schema import ClientConfig, ParticipationConfig, ResourcesConfig
from fedpeft.fleet import LocalFleet, SimulatedParticipation
from fedpeft.fleet.profiles import ClientProfile, assign_profiles
from fedpeft.model.state import TrainableState
from fedpeft.runtime import Simulator
from fedpeft.strategy import FedAvg
from fedpeft.strategy.base import ClientUpdate

from ..client.test_trainer import BagOfTokens, data  # type: ignore[import-not-found]


def make(tmp_path, profiles=None, participation=None, per_round=4, min_updates=1):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = BagOfTokens()
    ts = TrainableState(model)
    clients = {f"c{i}": data(12) for i in range(6)}
    strategy = FedAvg(per_round)
    stale = participation is not None and participation.stragglers == "stale"
    strategy.initialize(ts.snapshot(), num_clients=len(clients), keep_past=participation.max_staleness if stale else 0)
    client = FederatedClient(
        LocalTrainer(model, ts, ClientConfig(local_steps=2, batch_size=4)),
        ts,
        clients,
        ClientStateStore(tmp_path),
        seed=0,
        plugins=strategy.client_plugins(),
    )
    fleet = SimulatedParticipation(LocalFleet(client), profiles, participation, seed=0)
    return Simulator(strategy, fleet, list(clients), seed=0, min_updates=min_updates)


def test_dropouts_are_seeded_recorded_and_cost_their_downlink(tmp_path) -> None:
    runs = [make(tmp_path / str(i), participation=ParticipationConfig(dropout=0.5), per_round=6) for i in range(2)]
    a, b = (sim.run_round(1) for sim in runs)
    assert a.dropped == b.dropped and 0 < len(a.dropped) < 6
    assert all(r == "dropped out (no reply)" for r in a.dropped.values())
    assert len(a.accepted) + len(a.dropped) == 6
    assert a.bytes_down > a.bytes_up  # everyone downloaded, only those who stayed uploaded


def test_too_many_dropouts_fail_the_round_without_crashing(tmp_path) -> None:
    sim = make(tmp_path, participation=ParticipationConfig(dropout=0.99), per_round=3, min_updates=3)
    before = {k: v.clone() for k, v in sim.global_state.items()}
    out = sim.run_round(1)
    assert out.status == "failed"
    assert all(torch.equal(before[k], sim.global_state[k]) for k in before)


def test_stragglers_past_the_deadline_are_dropped(tmp_path) -> None:
    # 8 samples per round: c0 at 1 example/s takes 8 s, the others at 100/s take 0.08 s.
    profiles = {f"c{i}": ClientProfile(speed=1.0 if i == 0 else 100.0) for i in range(6)}
    sim = make(tmp_path, profiles, ParticipationConfig(deadline_s=2.0), per_round=6)
    out = sim.run_round(1)
    assert "c0" in out.dropped and "dropped" in out.dropped["c0"] and "c0" not in out.accepted
    assert len(out.accepted) == 5 and out.simulated_seconds == 2.0


def test_stale_updates_arrive_later_with_a_discount_and_the_client_rests_meanwhile(tmp_path) -> None:
    profiles = {f"c{i}": ClientProfile(speed=1.0 if i == 0 else 100.0) for i in range(6)}
    part = ParticipationConfig(deadline_s=3.0, stragglers="stale", staleness_exponent=1.0)
    sim = make(tmp_path, profiles, part, per_round=6)
    first = sim.run_round(1)  # c0 needs 8 s = 3 rounds: arrives in round 3, 2 rounds late
    assert "round 3" in first.dropped["c0"]
    second = sim.run_round(2)
    assert "c0" not in second.sampled  # busy with its late update
    third = sim.run_round(3)
    assert third.late == ["c0"] and "c0" in third.accepted
    assert sim.fleet.pending == []


def test_straggler_discount_is_applied_to_the_weight(tmp_path) -> None:
    profiles = {f"c{i}": ClientProfile(speed=1.0 if i == 0 else 100.0) for i in range(6)}
    sim = make(tmp_path, profiles, ParticipationConfig(deadline_s=3.0, stragglers="stale", staleness_exponent=1.0))
    sim.run_round(1)
    ((due, update),) = [
        (
            p.due,
            ClientUpdate(
                p.reply.client_id, {}, p.reply.num_examples, staleness=p.staleness, weight_scale=p.weight_scale
            ),
        )
        for p in sim.fleet.pending
        if p.reply.client_id == "c0"
    ]
    assert due == 3 and update.staleness == 2 and update.weight == pytest.approx(update.num_examples / 3)


def test_step_budgets_come_from_the_clients_tier(tmp_path) -> None:
    profiles = {f"c{i}": ClientProfile(local_steps=1 if i % 2 else 3) for i in range(6)}
    sim = make(tmp_path, profiles, per_round=6)
    out = sim.run_round(1)
    assert out.samples == 3 * (4 * 1) + 3 * (4 * 3)


def test_profiles_follow_the_tier_shares_exactly_and_are_seeded() -> None:
    ids = [f"c{i}" for i in range(10)]
    cfg = ResourcesConfig(rank_tiers={4: 0.3, 8: 0.5, 16: 0.2}, speed_tiers={10.0: 0.5, 50.0: 0.5})
    a, b = assign_profiles(ids, cfg, seed=1), assign_profiles(ids, cfg, seed=1)
    assert a == b
    ranks = [p.rank for p in a.values()]
    assert (ranks.count(4), ranks.count(8), ranks.count(16)) == (3, 5, 2)
    assert assign_profiles(ids, cfg, seed=2) != a
