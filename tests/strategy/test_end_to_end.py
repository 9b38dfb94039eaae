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
    tiers = TIERS if STRATEGIES.get(name).config.mixed_ranks else []
    cfg = load_config(
        tiny_config,
        [
            f"strategy.name={name}",
            *STRATEGY_OVERRIDES[name],
            *tiers,
            "rounds=3",
            "data.local_test_fraction=0.3",
            "eval.per_client=true",
        ],
    )
    summary = fedpeft.run(cfg)
    assert summary["ledger"]["failed_rounds"] == 0
    assert summary["final"]["loss"] < summary["initial"]["loss"], (summary["initial"], summary["final"])
    assert summary["per_client"]["clients"] > 0


def test_heterogeneous_config_runs_with_faults_recorded(tiny_config: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """configs/heterogeneous.yaml's fleet (ranks, speeds, deadline, stale updates, dropouts) on the tiny data."""
    import json
    from pathlib import Path

    import yaml

    shipped = yaml.safe_load((Path(__file__).parents[2] / "configs" / "heterogeneous.yaml").read_text())
    cfg = {**tiny_config, **{k: shipped[k] for k in ("strategy", "resources", "participation")}}
    cfg["peft"] = {**tiny_config["peft"], "r": 16}
    cfg["resources"] = {**shipped["resources"], "speed_tiers": {1: 0.5, 40: 0.5}}  # some clients always late
    cfg["participation"] = {**shipped["participation"], "deadline_s": 10, "dropout": 0.3}
    cfg["strategy"] = {**shipped["strategy"], "min_updates": 1}
    cfg.update(
        rounds=4,
        eval={"every": 0, "per_client": True, "finetune_steps": 2},
        data={**tiny_config["data"], "local_test_fraction": 0.3},
        clients={**tiny_config["clients"], "per_round": 5},
    )
    summary = fedpeft.run(load_config(cfg))
    led = summary["ledger"]
    assert led["dropped_clients"] > 0 and led["simulated_seconds"] > 0
    assert summary["strategy"]["ranks"] == {"4": 2, "8": 3, "16": 1}
    assert summary["per_client"]["personalised"]["clients"] > 0
    lines = (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r["round"]]
    assert any(reason.startswith(("straggler", "dropped out")) for r in records for reason in r["dropped"].values())
