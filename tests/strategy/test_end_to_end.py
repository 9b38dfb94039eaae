"""Every strategy through ``fedpeft.run`` on the tiny model: uniform ranks, mixed rank tiers, personalisation."""

from __future__ import annotations

import pytest

import fedpeft
from fedpeft.config import load_config
from fedpeft.strategy import STRATEGIES

STRATEGY_OVERRIDES = {
    "fedavg": [],
    "fedprox": ["strategy.mu=0.1"],
    "fedavgm": [],
    "fedadam": [],
    "fedyogi": [],
    "fedadagrad": [],
    "scaffold": [],
    "ffa_lora": [],
    "fedsa_lora": [],
    "flora": [],
    "flexlora": [],
    "hetlora": ["strategy.self_prune=true"],
}
TIERS = ["peft.r=4", "resources.rank_tiers={2: 0.5, 4: 0.5}"]


def test_every_registered_strategy_is_covered() -> None:
    assert set(STRATEGY_OVERRIDES) == set(STRATEGIES.names())


@pytest.mark.parametrize("name", sorted(STRATEGY_OVERRIDES))
def test_strategy_runs_and_learns(name: str, tiny_config: dict) -> None:
    tiers = TIERS if STRATEGIES.get(name).ranks else []
    cfg = load_config(tiny_config, [f"strategy.name={name}", *STRATEGY_OVERRIDES[name], *tiers,
                                    "rounds=3", "data.local_test_fraction=0.3", "eval.per_client=true"])
    summary = fedpeft.run(cfg)
    assert summary["ledger"]["failed_rounds"] == 0
    assert summary["final"]["loss"] < summary["initial"]["loss"], (summary["initial"], summary["final"])
    assert summary["per_client"]["clients"] > 0
