"""Client-level DP-FedAvg: clipping, noise, adaptive clipping and the accountant's epsilon."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant

import fedpeft
from fedpeft.client.plugins import FitContext
from fedpeft.config import load_config
from fedpeft.errors import ConfigError
from fedpeft.strategy import STRATEGIES, FedAvg
from fedpeft.strategy.base import ClientUpdate, update_norm
from fedpeft.wrappers.client_dp import BELOW_KEY, CLIP_KEY, ClientLevelDP, ClipAndNoise


def dp_strategy(per_round: int = 4, **kwargs) -> tuple[FedAvg, ClientLevelDP]:  # type: ignore[no-untyped-def]
    s = FedAvg(per_round=per_round)
    s.initialize({"w": torch.zeros(1000)})
    args = {"clip": 1.0, "noise_multiplier": 0.0, "mode": "central", "num_clients": 40, "delta": 1e-5, **kwargs}
    return s, ClientLevelDP(s, **args)


@settings(max_examples=30, deadline=None)
@given(clip=st.floats(0.01, 10.0), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 100))
def test_every_update_is_clipped_on_the_client_and_again_on_the_server(clip: float, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    update = {"a": scale * torch.randn(4, 5, generator=gen), "b": scale * torch.randn(3, generator=gen)}
    ctx = FitContext(1, "c0", {CLIP_KEY: clip}, {}, {}, {}, lr=0.1)
    ctx.update = dict(update)
    ClipAndNoise(local_noise=0.0).finish(ctx)
    assert update_norm(ctx.update) <= clip * (1 + 1e-5)
    assert ctx.metrics[BELOW_KEY] == float(update_norm(update) <= clip)
    _, dp = dp_strategy(clip=clip)  # a client that skipped clipping is clipped on receipt
    received = dp.receive(ClientUpdate("evil", {"w": scale * torch.randn(1000, generator=gen)}, 1))
    assert update_norm(received.delta) <= clip * (1 + 1e-5)


def test_central_noise_has_std_z_clip_over_m() -> None:
    s, dp = dp_strategy(noise_multiplier=2.0, clip=0.5)
    zeros = [ClientUpdate(str(i), {"w": torch.zeros(1000)}, 1) for i in range(4)]
    noise = torch.cat([dp.mean(zeros)["w"] for _ in range(20)])
    assert float(noise.std()) == pytest.approx(2.0 * 0.5 / 4, rel=0.05)
    assert abs(float(noise.mean())) < 0.01


def test_the_mean_ignores_example_counts_and_divides_by_the_expected_count() -> None:
    _, dp = dp_strategy()  # 4 expected a round (Poisson): the actual count would reveal who joined
    ups = [ClientUpdate("a", {"w": torch.full((1000,), 0.01)}, 1), ClientUpdate("b", {"w": torch.zeros(1000)}, 10**6)]
    assert torch.allclose(dp.mean(ups)["w"], torch.full((1000,), 0.01 / 4))
    _, local = dp_strategy(mode="local")  # local noise: the server's mean is post-processing, over who arrived
    assert torch.allclose(local.mean(ups)["w"], torch.full((1000,), 0.005))


def test_local_noise_is_added_by_the_client() -> None:
    ctx = FitContext(3, "c1", {CLIP_KEY: 1.0}, {}, {}, {}, lr=0.1)
    ctx.update = {"w": torch.zeros(5000)}
    ClipAndNoise(local_noise=1.5, seed=0).finish(ctx)
    assert float(ctx.update["w"].std()) == pytest.approx(1.5, rel=0.05)


def test_adaptive_clipping_moves_the_clip_towards_the_quantile() -> None:
    _, dp = dp_strategy(adaptive=True, target_quantile=0.5, clip_lr=0.2)
    below = [ClientUpdate(str(i), {"w": torch.zeros(1000)}, 1, {BELOW_KEY: 1.0}) for i in range(4)]
    dp.aggregate_train(1, below)  # every norm was below C: C shrinks by exp(-0.2 (1 - 0.5))
    big = ClientUpdate("x", {"w": torch.full((1000,), 5.0)}, 1)
    assert dp.clip == pytest.approx(math.exp(-0.1)) and update_norm(dp.receive(big).delta) == pytest.approx(dp.clip)
    assert dp.downlink(3, "c0")[1][CLIP_KEY] == dp.clip
    above = [ClientUpdate(str(i), {"w": torch.zeros(1000)}, 1, {BELOW_KEY: 0.0}) for i in range(4)]
    dp.aggregate_train(2, above)
    assert dp.clip == pytest.approx(1.0)


def test_adaptive_clipping_spends_part_of_the_budget_on_the_count() -> None:
    _, dp = dp_strategy(per_round=20, adaptive=True, noise_multiplier=1.0)
    assert dp.update_noise(100) == pytest.approx((1.0 - (2 * 5.0) ** -2) ** -0.5)


def test_adaptive_clipping_that_would_leave_no_budget_for_the_updates_is_refused() -> None:
    with pytest.raises(ConfigError, match="raise clients.per_round above 10"):
        dp_strategy(per_round=4, adaptive=True, noise_multiplier=1.0)  # count noise std 0.2: 2 * 0.2 < z


def test_epsilon_equals_opacus_for_the_same_rate_noise_and_rounds(tiny_config: dict) -> None:
    summary = fedpeft.run(
        tiny_config,
        ["privacy.client_dp=central", "privacy.noise_multiplier=1.2", "privacy.delta=1e-4", "rounds=3"],
        progress=False,
    )
    acc = RDPAccountant()
    for _ in range(3):
        acc.step(noise_multiplier=1.2, sample_rate=3 / 6)  # 3 of the 6 shops per round
    assert summary["privacy"]["epsilon"] == pytest.approx(acc.get_epsilon(1e-4), rel=1e-9)
    assert "epsilon" in fedpeft.report.summary_text(summary)
    import dp_accounting  # the second, independent accountant: the reported figure is never below its value
    from dp_accounting.pld import PLDAccountant

    pld = PLDAccountant(value_discretization_interval=1e-3)
    pld.compose(dp_accounting.PoissonSampledDpEvent(3 / 6, dp_accounting.GaussianDpEvent(1.2)), 3)
    assert pld.get_epsilon(1e-4) <= summary["privacy"]["epsilon"] <= 1.25 * pld.get_epsilon(1e-4)


def test_target_epsilon_calibrates_the_noise(tiny_config: dict) -> None:
    summary = fedpeft.run(
        tiny_config, ["privacy.client_dp=central", "privacy.target_epsilon=8", "rounds=3"], progress=False
    )
    eps = summary["privacy"]["epsilon"]
    assert 7.0 < eps <= 8.0 and summary["privacy"]["noise_multiplier"] > 0


def test_local_dp_composes_with_compression(tiny_config: dict) -> None:
    summary = fedpeft.run(
        tiny_config,
        ["privacy.client_dp=local", "privacy.noise_multiplier=0.5", "compression.uplink=[{name: int8}]"],
        progress=False,
    )
    assert summary["ledger"]["rejected_updates"] == 0 and math.isfinite(summary["privacy"]["epsilon"])
    one = RDPAccountant()
    for _ in range(2):  # local noise, no amplification, replace-one (sensitivity 2C): at most one release a round
        one.step(noise_multiplier=0.5 / 2, sample_rate=1.0)
    assert summary["privacy"]["epsilon"] <= one.get_epsilon(summary["privacy"]["delta"]) + 1e-9


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["privacy.client_dp=central"], "exactly one of"),
        (["privacy.client_dp=local", "privacy.noise_multiplier=1", "privacy.adaptive_clip=true"], "trusted server"),
        (
            ["privacy.client_dp=central", "privacy.noise_multiplier=1", "robustness.aggregator=median"],
            "clips and averages",
        ),
        (["privacy.client_dp=central", "privacy.noise_multiplier=1", "strategy.name=flora"], "its own way"),
        (
            ["privacy.client_dp=central", "privacy.noise_multiplier=1", "privacy.secure_aggregation.enabled=true"],
            "privacy.sampling: fixed",
        ),
    ],
)
def test_inconsistent_privacy_settings_are_refused(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config({}, overrides)


@pytest.mark.parametrize("mode", ["central", "local"])
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_no_released_tensor_escapes_the_noise(name: str, mode: str) -> None:
    """For every registered strategy: every tensor a client releases (model deltas and strategy state such as
    SCAFFOLD's control-variate changes) is clipped as one vector and noised, centrally by the wrapper, locally
    by the client mod; or the combination is refused with the reason."""
    from fedpeft.build.server import build_strategy

    overrides = [
        f"strategy.name={name}",
        f"privacy.client_dp={mode}",
        "privacy.noise_multiplier=1.0",
        "privacy.clip=0.5",
        "clients.per_round=4",
    ]
    if STRATEGIES.get(name).config.single_updates:  # it must see single updates: no noised mean can stand in
        with pytest.raises(ConfigError, match="its own way"):
            load_config({}, overrides)
        return
    cfg = load_config({}, overrides)
    state = {"m.lora_A.default.weight": torch.zeros(4, 16), "m.lora_B.default.weight": torch.zeros(16, 4)}
    dp = build_strategy(cfg, torch.nn.Linear(1, 1), state, num_clients=8)
    assert isinstance(dp, ClientLevelDP)
    spec = dp.uplink_spec("c0", {})
    zeros = {n: torch.zeros(shape, dtype=dtype) for n, (shape, dtype) in spec.items()}
    released = []
    for i in range(4):  # every client sends an all-zero update: all that arrives is noise (or nothing)
        ctx = FitContext(1, f"c{i}", dp.downlink(1, f"c{i}")[1], {}, {}, {}, lr=0.1)
        ctx.update = {n: t.clone() for n, t in zeros.items()}
        ClipAndNoise(1.0 if mode == "local" else 0.0, seed=i).finish(ctx)
        released.append(ClientUpdate(f"c{i}", ctx.update, 10))
    mean = dp.mean([dp.receive(u) for u in released])
    assert set(mean) == set(spec)  # the mean covers every released tensor ...
    expected = 0.5 / 4 if mode == "central" else 0.5 / 2  # z C / m central; local: z C / sqrt(m), m = 4
    for n, t in mean.items():  # ... and each carries that noise
        assert float(t.float().std()) == pytest.approx(expected, rel=0.35), n


def test_scaffold_control_variates_carry_the_accounted_noise() -> None:
    from fedpeft.build.server import build_strategy
    from fedpeft.strategy.scaffold import DC

    cfg = load_config(
        {},
        [
            "strategy.name=scaffold",
            "privacy.client_dp=central",
            "privacy.noise_multiplier=2.0",
            "privacy.clip=1.0",
            "clients.per_round=4",
        ],
    )
    dp = build_strategy(cfg, torch.nn.Linear(1, 1), {"w": torch.zeros(4000)}, num_clients=8)
    ups = [ClientUpdate(f"c{i}", {"w": torch.zeros(4000), DC + "w": torch.zeros(4000)}, 1) for i in range(4)]
    dp.aggregate_train(1, [dp.receive(u) for u in ups])
    control = dp.inner.control["w"]  # c += (|S| / N) * noised mean of the control changes: std (4/8) z C / 4
    assert float(control.std()) == pytest.approx(0.5 * 2.0 * 1.0 / 4, rel=0.1)
    assert float(dp.global_state["w"].std()) == pytest.approx(2.0 * 1.0 / 4, rel=0.1)
    assert dp.epsilon > 0 and math.isfinite(dp.epsilon)


def test_central_dp_samples_clients_by_poisson_at_the_accounted_rate() -> None:
    import numpy as np

    _, dp = dp_strategy()  # q = 4 / 40
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(40)]
    sizes = [len(dp.configure_train(r, ids, rng)) for r in range(2000)]
    assert np.mean(sizes) == pytest.approx(4.0, rel=0.05)  # q N on average ...
    assert np.var(sizes) == pytest.approx(40 * 0.1 * 0.9, rel=0.15)  # ... with the binomial's variance
    assert min(sizes) == 0 and dp.ledger.sampling == "poisson" and dp.sample_rate == 0.1
    _, fixed = dp_strategy(sampling="fixed")
    assert {len(fixed.configure_train(r, ids, rng)) for r in range(50)} == {4}


def test_a_round_no_client_joined_is_still_released_and_accounted() -> None:
    s, dp = dp_strategy(noise_multiplier=1.0)
    assert dp.releases_every_round
    dp.aggregate_train(1, [])  # noise only: skipping it would tell whether anyone joined
    assert float(s.global_state["w"].std()) == pytest.approx(1.0 / 4, rel=0.1)
    assert dp.accounting == [(1.0, 0.1, 1)] and dp.epsilon > 0


def test_an_empty_poisson_round_does_not_fail_the_run(tiny_config: dict) -> None:
    import json
    from pathlib import Path

    summary = fedpeft.run(
        tiny_config,
        ["privacy.client_dp=central", "privacy.noise_multiplier=1.0", "clients.per_round=1", "rounds=6"],
        progress=False,
    )
    rows = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    sizes = [r["sampled"] for r in rows if "sampled" in r]
    assert len(sizes) == 6 and len(set(sizes)) > 1 and 0 in sizes  # Poisson: the cohort's size varies, even to 0
    assert all(r["status"] == "ok" for r in rows if "status" in r)  # an empty round is released (noise only)
    assert summary["privacy"]["epsilon"] > 0
    assert len(summary["privacy"]["sampling"]) and summary["privacy"]["adjacency"] == "add/remove one client"


def test_the_summary_states_sampling_adjacency_and_accountant(tiny_config: dict) -> None:
    summary = fedpeft.run(
        tiny_config,
        ["privacy.client_dp=central", "privacy.noise_multiplier=1.0", "privacy.sampling=fixed"],
        progress=False,
    )
    p = summary["privacy"]
    assert p["adjacency"] == "replace one client" and "without replacement" in p["sampling"]
    assert "dp-accounting" in p["accountant"] and p["delta"] < 1 / 6
    text = fedpeft.report.summary_text(summary)
    assert "adjacency: replace one client" in text and "without replacement" in text


def test_default_delta_is_below_one_over_the_clients_and_a_larger_one_is_refused(tiny_config: dict) -> None:
    from fedpeft.privacy.accounting import default_delta

    assert all(default_delta(n) < 1 / n for n in (2, 4, 20, 423, 10**6))
    with pytest.raises(ConfigError, match="at least 1/6"):
        fedpeft.run(
            tiny_config,
            ["privacy.client_dp=central", "privacy.noise_multiplier=1", "privacy.delta=0.2"],
            progress=False,
        )
    with pytest.raises(ConfigError, match="privacy.dp_sgd.delta"):
        fedpeft.run(
            tiny_config,
            ["privacy.dp_sgd.enabled=true", "privacy.dp_sgd.noise_multiplier=1", "privacy.dp_sgd.delta=0.5"],
            progress=False,
        )


def test_stale_stragglers_are_refused_under_client_dp() -> None:
    with pytest.raises(ConfigError, match="stragglers: drop"):
        load_config(
            {},
            [
                "privacy.client_dp=central",
                "privacy.noise_multiplier=1",
                "participation.stragglers=stale",
            ],
        )


def test_secret_noise_cannot_be_regenerated_from_the_seed(tiny_config: dict) -> None:
    """Seeded noise reproduces a run (and so anyone with its seed can remove it); secret noise does neither."""
    from fedpeft.config.load import for_deployment

    args = ["privacy.client_dp=local", "privacy.noise_multiplier=0.5", "rounds=1", "eval.every=0"]
    seeded = [fedpeft.run(tiny_config, [*args, f"name=s{i}"], progress=False)["final"] for i in range(2)]
    secret = [
        fedpeft.run(tiny_config, [*args, "privacy.secure_noise=true", f"name=x{i}"], progress=False) for i in range(2)
    ]
    assert seeded[0] == seeded[1] and secret[0]["final"] != secret[1]["final"]
    assert secret[0]["privacy"]["secret_noise"] and "OS entropy" in fedpeft.report.summary_text(secret[0])
    cfg = load_config({}, ["privacy.client_dp=central", "privacy.noise_multiplier=1"])
    assert not cfg.privacy.secret_noise and for_deployment(cfg).privacy.secret_noise  # deployments: on by default
    s, dp = dp_strategy(noise_multiplier=1.0, secret_noise=True)
    zeros = [ClientUpdate(str(i), {"w": torch.zeros(1000)}, 1) for i in range(4)]
    assert not torch.equal(
        dp.mean(zeros)["w"], dp_strategy(noise_multiplier=1.0, secret_noise=True)[1].mean(zeros)["w"]
    )


def test_local_dp_counts_every_sampled_client_as_a_release(tiny_config: dict) -> None:
    """Under local DP a client's noised update is released when sent, whatever the server does with it: here
    every update is rejected (max_update_norm) and every round fails, yet epsilon composes over the rounds."""
    summary = fedpeft.run(
        tiny_config,
        ["privacy.client_dp=local", "privacy.noise_multiplier=2.0", "robustness.max_update_norm=1e-9"],
        progress=False,
    )
    assert summary["ledger"]["rejected_updates"] > 0 and summary["updates_accepted"] == 0
    assert summary["privacy"]["epsilon"] > 0


def test_scaffold_under_central_dp_scales_by_the_expected_cohort_not_the_actual_one() -> None:
    from fedpeft.build.server import build_strategy
    from fedpeft.strategy.scaffold import DC

    cfg = load_config(
        {},
        ["strategy.name=scaffold", "privacy.client_dp=central", "privacy.noise_multiplier=2.0", "clients.per_round=4"],
    )
    stds = []
    for joined in (1, 4, 7):  # Poisson cohorts of any size: the control variate's noise must not tell them apart
        dp = build_strategy(cfg, torch.nn.Linear(1, 1), {"w": torch.zeros(4000)}, num_clients=8)
        ups = [ClientUpdate(f"c{i}", {"w": torch.zeros(4000), DC + "w": torch.zeros(4000)}, 1) for i in range(joined)]
        dp.aggregate_train(1, [dp.receive(u) for u in ups])
        stds.append(float(dp.inner.control["w"].std()))
    assert stds == pytest.approx([0.5 * 2.0 * 1.0 / 4] * 3, rel=0.1)


def test_client_dp_off_can_be_written_as_yaml_writes_it() -> None:
    import yaml

    assert load_config({}, ["privacy.client_dp=off"]).privacy.client_dp == "off"  # YAML reads bare `off` as false
    assert load_config({"privacy": yaml.safe_load("client_dp: off")}).privacy.client_dp == "off"
