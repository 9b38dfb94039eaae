"""Compression settings in a run config: overrides, defaults and refusals that name the fix."""

from __future__ import annotations

import pytest

from fedpeft.config import load_config
from fedpeft.errors import ConfigError


def test_pipelines_come_from_yaml_overrides_in_order() -> None:
    cfg = load_config({}, ["compression.uplink=[{name: lora_rank, keep: 2}, {name: int4, block: null}]"])
    assert [t.name for t in cfg.compression.uplink] == ["lora_rank", "int4"]
    assert cfg.compression.uplink[1].block is None and cfg.compression.feedback is False  # type: ignore[union-attr]
    assert load_config({}, ["compression.uplink=[{name: randk}]"]).compression.feedback is True


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["peft.method=bitfit", "compression.uplink=[{name: lora_rank}]"], "set peft.method: lora"),
        (["strategy.name=fedsa_lora", "compression.uplink=[{name: lora_rank, keep: 2}]"], "fedsa_lora keeps B"),
        (["peft.r=4", "compression.uplink=[{name: lora_rank, keep: 4}]"], "must be below peft.r"),
        (["compression.downlink=[{name: prune}]"], "use fp16, bf16, int8, int4, int2 there"),
        (["compression.uplink=[{name: int8, bits: 3}]"], "bits"),
    ],
)
def test_inconsistent_compression_is_refused_with_the_fix(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config({}, overrides)
