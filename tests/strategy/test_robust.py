"""Robust aggregation, norm bounding and simulated attacks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fedpeft
from fedpeft.strategy.base import ClientUpdate, bound_norm, update_norm
from fedpeft.strategy.robust import coordinate_median, krum_scores, multi_krum, trimmed_mean


def updates_with_outliers(honest: int, bad: int, dim: int, seed: int, size: float) -> list[ClientUpdate]:
    gen = torch.Generator().manual_seed(seed)
    ups = [ClientUpdate(f"h{i}", {"w": torch.randn(dim, generator=gen)}, 10) for i in range(honest)]
    ups += [ClientUpdate(f"b{i}", {"w": size * torch.randn(dim, generator=gen)}, 1000) for i in range(bad)]
    return ups


@settings(max_examples=30, deadline=None)
@given(
    bad=st.integers(0, 3),
    extra=st.integers(1, 4),
    dim=st.integers(1, 20),
    seed=st.integers(0, 1000),
    size=st.floats(1e2, 1e6),
)
def test_median_and_trimmed_mean_stay_within_the_honest_range(
    bad: int, extra: int, dim: int, seed: int, size: float
) -> None:
    honest = bad + extra  # honest clients are a strict majority
    ups = updates_with_outliers(honest, bad, dim, seed, size)
    stacked = torch.stack([u.delta["w"] for u in ups[:honest]])
    low, high = stacked.min(0).values - 1e-6, stacked.max(0).values + 1e-6
    for agg in (coordinate_median(ups)["w"], trimmed_mean(ups, fraction=bad / len(ups) + 1e-9)["w"]):
        assert bool(((agg >= low) & (agg <= high)).all())


@settings(max_examples=30, deadline=None)
@given(bad=st.integers(1, 3), seed=st.integers(0, 1000))
def test_krum_picks_an_honest_update_when_n_exceeds_2f_plus_2(bad: int, seed: int) -> None:
    ups = updates_with_outliers(2 * bad + 3, bad, 8, seed, 1e3)
    best = int(krum_scores(ups, bad).argmin())
    assert ups[best].client_id.startswith("h")
    chosen = multi_krum(ups, byzantine=bad, m=None)["w"]  # n - f best: all honest ones here
    honest_mean = torch.stack([u.delta["w"] for u in ups if u.client_id.startswith("h")]).mean(0)
    assert torch.allclose(chosen, honest_mean, atol=1e-5)


def test_robust_rules_ignore_example_counts() -> None:
    ups = [
        ClientUpdate("a", {"w": torch.tensor([1.0])}, 1),
        ClientUpdate("b", {"w": torch.tensor([2.0])}, 1),
        ClientUpdate("evil", {"w": torch.tensor([100.0])}, 10**6),
    ]
    assert coordinate_median(ups)["w"].item() == 2.0


@settings(max_examples=30, deadline=None)
@given(bound=st.floats(1e-3, 10.0), scale=st.floats(1e-4, 1e4), seed=st.integers(0, 100))
def test_norm_bounding_caps_the_norm_and_keeps_the_direction(bound: float, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    delta = {"a": scale * torch.randn(3, 4, generator=gen), "b": scale * torch.randn(5, generator=gen)}
    out = bound_norm(delta, bound)
    assert update_norm(out) <= bound * (1 + 1e-5)
    ratio = out["a"].reshape(-1)[0] / delta["a"].reshape(-1)[0]
    assert torch.allclose(out["b"], delta["b"] * ratio, rtol=1e-5, atol=1e-12)  # one common factor
    if update_norm(delta) <= bound:
        assert out is delta


LEARN = ["rounds=6", "clients.per_round=6", "clients.local_steps=6", "clients.lr=0.03", "model.pooling=mean"]
ATTACK = ["attack.kind=sign_flip", "attack.fraction=0.34", "attack.scale=5"]


def test_sign_flipping_attack_breaks_the_mean_and_robust_rules_resist(tiny_config: dict) -> None:
    clean = fedpeft.run(tiny_config, LEARN, progress=False)
    attacked = fedpeft.run(tiny_config, [*LEARN, *ATTACK], progress=False)
    median = fedpeft.run(tiny_config, [*LEARN, *ATTACK, "robustness.aggregator=median"], progress=False)
    krum = fedpeft.run(
        tiny_config, [*LEARN, *ATTACK, "robustness.aggregator=multi_krum", "robustness.byzantine=2"], progress=False
    )
    assert attacked["attack"]["attackers"] == 2
    accs = {
        k: s["final"]["accuracy"]
        for k, s in {"clean": clean, "attacked": attacked, "median": median, "krum": krum}.items()
    }
    assert accs["attacked"] < accs["clean"] - 0.15, accs
    losses = {k: s["final"]["loss"] for k, s in {"clean": clean, "attacked": attacked, "median": median}.items()}
    assert accs["krum"] > accs["attacked"] + 0.15, accs  # Multi-Krum drops the attackers' updates
    assert losses["median"] < losses["attacked"], losses  # the median stays within the honest updates' range


def test_updates_above_the_norm_limit_are_rejected_and_the_round_goes_on(tiny_config: dict) -> None:
    summary = fedpeft.run(
        tiny_config,
        [
            "attack.kind=scale",
            "attack.scale=1000",
            "attack.fraction=0.34",
            "robustness.max_update_norm=50",
            "clients.per_round=6",
        ],
        progress=False,
    )
    import json
    from pathlib import Path

    rounds = [json.loads(x) for x in Path(summary["run_dir"], "metrics.jsonl").read_text().splitlines()[1:]]
    reasons = [r for rec in rounds for r in rec["rejected"].values()]
    assert summary["ledger"]["failed_rounds"] == 0 and len(reasons) == 2 * summary["attack"]["attackers"]
    assert all("exceeds robustness.max_update_norm (50)" in r for r in reasons)


def test_robust_aggregators_are_refused_for_factor_aggregating_strategies() -> None:
    from fedpeft.config import load_config
    from fedpeft.errors import ConfigError

    with pytest.raises(ConfigError, match="combines LoRA factors its own way"):
        load_config({}, ["strategy.name=flexlora", "robustness.aggregator=median"])
