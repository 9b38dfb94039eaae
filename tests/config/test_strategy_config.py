"""Strategy, resources and participation settings: defaults and refusals that name the fix."""

from __future__ import annotations

import pytest

from fedpeft.config import load_config
from fedpeft.errors import ConfigError


def test_strategy_section_without_a_name_is_fedavg() -> None:
    cfg = load_config({"strategy": {"min_updates": 2}})
    assert cfg.strategy.name == "fedavg" and cfg.strategy.min_updates == 2


def test_each_strategy_has_its_own_settings() -> None:
    assert load_config({}, ["strategy.name=fedprox", "strategy.mu=0.5"]).strategy.mu == 0.5  # type: ignore[union-attr]
    assert load_config({}, ["strategy.name=fedyogi"]).strategy.server_lr == 0.01
    with pytest.raises(ConfigError, match="strategy.mu"):
        load_config({}, ["strategy.name=fedavg", "strategy.mu=0.5"])


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["resources.rank_tiers={4: 0.5, 8: 0.4}"], "must sum to 1"),
        (["resources.rank_tiers={4: 0.5, 16: 0.5}"], "set peft.r: 16"),
        (["peft.method=ia3", "resources.rank_tiers={8: 1.0}"], "set peft.method: lora"),
        (["peft.method=bitfit", "strategy.name=flora"], "set peft.method: lora"),
        (["peft.use_dora=true", "strategy.name=flexlora"], "use_dora: false"),
        (["participation.deadline_s=5"], "resources.speed_tiers"),
        (["eval.finetune_steps=3"], "eval.per_client"),
        (["strategy.name=fedmagic"], "strategy"),
    ],
)
def test_inconsistent_settings_are_refused_with_the_fix(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config({}, overrides)


def test_scaffold_with_rank_tiers_is_refused_before_training(tiny_config: dict) -> None:
    import fedpeft

    cfg = load_config(tiny_config, ["strategy.name=scaffold", "resources.rank_tiers={2: 0.5, 4: 0.5}"])
    with pytest.raises(ConfigError, match="mixed LoRA ranks"):
        fedpeft.run(cfg)
