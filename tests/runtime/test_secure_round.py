"""Secure aggregation in the simulator: the server half holds only masked integers, and the round's mean is
exact (to the fixed point) with dropouts, bad payloads and client-level DP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.errors import ConfigError, InvalidUpdate
from fedpeft.fleet.secure_round import SecureRound
from fedpeft.recipe import Simulation, make_simulator
from fedpeft.report import RunDir
from fedpeft.strategy.base import ClientUpdate
from fedpeft.wrappers.client_dp import ClientLevelDP
from fedpeft.wrappers.strategy import find_layer

SECURE = ["privacy.secure_aggregation.enabled=true", "privacy.secure_aggregation.threshold=0.51"]


def simulator(tiny_config: dict, overrides: list[str]) -> Simulation:
    cfg = load_config(tiny_config, overrides)
    return make_simulator(build(cfg), RunDir.create(cfg).path / "client_state")


def recording(sim: Simulation) -> list[ClientUpdate]:
    """The plain run's individual updates, as its server received them."""
    seen: list[ClientUpdate] = []
    receive = sim.strategy.receive
    sim.strategy.receive = lambda u: seen.append(u) or receive(u)  # type: ignore[method-assign, func-returns-value]
    return seen


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["privacy.client_dp=central", "privacy.noise_multiplier=0.8", "privacy.clip=0.5", "privacy.sampling=fixed"],
        ["privacy.client_dp=local", "privacy.noise_multiplier=0.3"],
        ["strategy.name=ffa_lora"],
        ["strategy.name=fedadam", "strategy.server_lr=0.01"],
    ],
)
def test_secure_rounds_reach_the_plain_global_state_with_dropouts(tiny_config: dict, extra: list[str]) -> None:
    common = ["participation.dropout=0.22", "clients.per_round=5", *extra]
    plain, secure = simulator(tiny_config, common), simulator(tiny_config, [*common, *SECURE])
    dropped = 0
    for r in (1, 2):
        a, b = plain.run_round(r), secure.run_round(r)
        assert a.accepted == b.accepted and a.dropped == b.dropped and b.status == "ok"
        dropped += len(b.dropped)
    assert dropped > 0  # the masks of clients that left after sharing keys were removed
    for name, value in plain.global_state.items():
        assert torch.allclose(secure.global_state[name], value, atol=1e-5), name  # (fixed point, then AdamW)
    if "privacy.client_dp=local" in extra:
        secure_dp, plain_dp = find_layer(secure.strategy, ClientLevelDP), find_layer(plain.strategy, ClientLevelDP)
        assert secure_dp is not None and plain_dp is not None
        assert secure_dp.epsilon == plain_dp.epsilon


def test_what_the_server_holds_says_nothing_about_any_update(tiny_config: dict) -> None:
    plain = simulator(tiny_config, ["clients.per_round=4"])
    secure = simulator(tiny_config, ["clients.per_round=4", *SECURE])
    seen = recording(plain)
    plain.run_round(1)
    updates = {u.client_id: u for u in seen}
    rounds: list[SecureRound] = []
    start = SecureRound.__init__

    def keep(self: SecureRound, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        start(self, *args, **kwargs)
        rounds.append(self)

    SecureRound.__init__ = keep  # type: ignore[method-assign]
    try:
        secure.run_round(1)
    finally:
        SecureRound.__init__ = start  # type: ignore[method-assign]
    held = rounds[0].server.masked  # everything per client that the server half kept
    assert set(held) == set(updates) and len(held) == 4
    for cid, words in held.items():
        true = np.concatenate([updates[cid].delta[n].flatten().numpy() for n in sorted(updates[cid].delta)])
        as_int = words.view(np.int32).astype(np.float64)
        assert words.dtype == np.uint32 and as_int.size == true.size
        assert abs(np.corrcoef(as_int, true)[0, 1]) < 0.15  # masked words do not track the update
        counts = np.bincount(words >> 28, minlength=16)  # top nibble uniform, not the small values' sign bits
        expected = words.size / 16
        assert ((counts - expected) ** 2 / expected).sum() < 50  # chi-square, 15 d.o.f.; p < 1e-5 to fail


def test_the_mean_is_exact_and_a_bad_masked_payload_is_a_dropout() -> None:
    spec = {"a": ((2, 3), torch.float32), "b": ((4,), torch.float32)}
    gen = torch.Generator().manual_seed(0)
    ups = {c: {n: 0.1 * torch.randn(s, generator=gen) for n, (s, _) in spec.items()} for c in "pqrst"}
    weights = {"p": 3.0, "q": 1.0, "r": 2.0, "s": 5.0, "t": 1.0}
    rnd = SecureRound(list(ups), weights, spec, threshold=3, bound=1.0)
    for cid in "pqr":
        rnd.receive(cid, rnd.mask(cid, ups[cid]))
    with pytest.raises(InvalidUpdate, match="s"):
        rnd.receive("s", rnd.mask("s", ups["s"])[:-8])  # truncated: rejected, then recovered as a dropout
    out = rnd.finish()
    assert out.members == ("p", "q", "r") and out.num_examples == 6
    for n in spec:
        mean = sum(weights[c] * ups[c][n] for c in "pqr") / 6
        assert torch.allclose(out.delta[n], mean, atol=1e-8)


def test_too_few_survivors_fail_the_round_and_keep_the_state(tiny_config: dict) -> None:
    sim = simulator(tiny_config, ["participation.dropout=0.99", "clients.per_round=4", *SECURE])
    before = {n: t.clone() for n, t in sim.global_state.items()}
    out = sim.run_round(1)
    assert out.status == "failed" and not out.accepted
    assert all(torch.equal(before[n], t) for n, t in sim.global_state.items())


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["strategy.name=scaffold"], "needs each client"),
        (["robustness.aggregator=median"], "robust aggregators"),
        (["compression.uplink=[{name: int8}]"], "drop compression.uplink"),
        (
            ["privacy.client_dp=central", "privacy.noise_multiplier=1", "privacy.adaptive_clip=true"],
            "fixed privacy.clip",
        ),
        (["privacy.secure_aggregation.threshold=0.5"], "greater than 0.5"),
    ],
)
def test_what_secure_aggregation_cannot_serve_is_refused(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config({}, [*SECURE, *overrides])
