"""fedpeft's in-process secure aggregation as a fleet decorator, and the engine's choice of protocol."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.config.schema import ParticipationConfig
from fedpeft.errors import ConfigError
from fedpeft.fleet import (
    Delivery,
    Fleet,
    InProcessSecAgg,
    LocalFleet,
    SecureAggregation,
    SecureFleet,
    SimulatedParticipation,
)
from fedpeft.pipeline import codec
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.runtime import Simulator
from fedpeft.strategy import FedAvg

SPEC = {"w": ((4,), torch.float32)}
UPDATES = {f"c{i}": torch.tensor([0.1 * i, -0.05 * i, 0.2, 0.01 * i * i]) for i in range(5)}


class Fixed(LocalFleet):
    """Each client sends its fixed update; c4 sends garbage."""

    def __init__(self) -> None:
        pass

    def fit(self, round_: int, instructions: Sequence[FitInstruction], on_reply=None, sink=None) -> Delivery:  # type: ignore[no-untyped-def, override]
        out = Delivery()
        for ins in instructions:
            cid = ins.client_id
            payload = b"junk" if cid == "c4" else codec.encode({"w": UPDATES[cid]})
            out.replies[cid] = FitReply(cid, payload, 10, {"samples": 10.0, "train_loss": 0.5})
        return out


def test_the_survivors_weighted_mean_is_exact_and_every_client_is_accounted_for() -> None:
    fleet = InProcessSecAgg(
        SimulatedParticipation(Fixed(), participation=ParticipationConfig(dropout=0.3), seed=1), UpdatePipeline()
    )
    ins = [FitInstruction(1, c, b"") for c in UPDATES]
    weights = {c: float(i + 1) for i, c in enumerate(UPDATES)}
    out = fleet.secure_round(ins, weights, SPEC, bound=1.0, threshold=0.4)
    assert out.failure is None and out.mean is not None
    assert set(out.accepted) | set(out.dropped) | set(out.rejected) == set(UPDATES)
    assert "c4" in out.rejected or "c4" in out.dropped
    assert out.dropped and all(r == "dropped out (no reply)" for r in out.dropped.values())
    total = sum(weights[c] for c in out.accepted)
    expected = sum(weights[c] * UPDATES[c] for c in out.accepted) / total
    assert torch.allclose(out.mean["w"], expected, atol=1e-7)
    assert set(out.bytes_up) == set(out.metrics) == set(out.accepted)


def test_too_few_survivors_is_a_failure_not_an_exception() -> None:
    fleet = InProcessSecAgg(
        SimulatedParticipation(Fixed(), participation=ParticipationConfig(dropout=0.9), seed=0), UpdatePipeline()
    )
    out = fleet.secure_round(
        [FitInstruction(1, c, b"") for c in UPDATES], dict.fromkeys(UPDATES, 1.0), SPEC, bound=1.0, threshold=0.8
    )
    assert out.mean is None and out.failure is not None and "secure aggregation needs" in out.failure


def test_fleets_say_whether_they_can_sum_securely() -> None:
    from fedpeft.runtime.flower.fleet import FlowerFleet

    assert isinstance(InProcessSecAgg(Fixed(), UpdatePipeline()), SecureFleet)
    assert isinstance(FlowerFleet(None, {}, "{}"), SecureFleet)  # type: ignore[arg-type]
    assert isinstance(Fixed(), Fleet) and not isinstance(Fixed(), SecureFleet)


def test_the_engine_refuses_secure_settings_with_a_fleet_that_cannot_sum_securely() -> None:
    strategy = FedAvg(per_round=4)
    strategy.initialize({"w": torch.zeros(4)})
    counts = dict.fromkeys(UPDATES, 10)
    with pytest.raises(ConfigError, match="cannot sum updates securely"):
        Simulator(strategy, Fixed(), list(UPDATES), seed=0, num_examples=counts, secure=SecureAggregation())
    sim = Simulator(
        strategy,
        InProcessSecAgg(Fixed(), UpdatePipeline()),
        list(UPDATES),
        seed=0,
        num_examples=counts,
        secure=SecureAggregation(threshold=0.5),
    )
    assert sim.secure_protocol == "fedpeft"
    out = sim.run_round(1)
    assert out.status == "ok" and out.accepted == sorted(set(out.sampled) - {"c4"})
