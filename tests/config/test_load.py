from pathlib import Path

import pytest

from fedpeft.config import apply_overrides, dump_yaml, load_config
from fedpeft.config.load import parse_override, read_yaml
from fedpeft.errors import ConfigError


def test_overrides_set_nested_values_with_yaml_types() -> None:
    out = apply_overrides({"clients": {"lr": 0.1}}, ["rounds=3", "clients.lr=1e-3", "peft.target_modules=[query]"])
    assert out == {"clients": {"lr": 1e-3}, "rounds": 3, "peft": {"target_modules": ["query"]}}


def test_overrides_do_not_mutate_the_input() -> None:
    data = {"clients": {"lr": 0.1}}
    apply_overrides(data, ["clients.lr=0.2"])
    assert data == {"clients": {"lr": 0.1}}


@pytest.mark.parametrize("bad", ["rounds", "=3", "clients..lr=1", "a: [="])
def test_malformed_override_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_override(bad) if "[" not in bad else apply_overrides({}, [bad])


def test_override_through_a_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="rounds is a value, not a section"):
        apply_overrides({"rounds": 3}, ["rounds.x=1"])


def test_unknown_key_names_the_key_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"clients": {"per_rnd": 3}})
    msg = str(err.value)
    assert "clients.per_rnd: unknown key" in msg and "per_round" in msg


def test_unknown_key_in_method_section_lists_method_fields() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"peft": {"method": "lora", "rank": 4}})
    assert "peft.rank: unknown key" in str(err.value) and "target_modules" in str(err.value)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("rounds=0", "rounds: Input should be greater than or equal to 1"),
        ("rounds=many", "rounds: Input should be a valid integer"),
        ("partition.alpha=0", "partition.alpha: Input should be greater than 0"),
        ("partition.method=random", "partition.method: Input should be 'iid', 'dirichlet'"),
        ("peft.method=magic", "peft"),
        ("data.dataset=csv", "set data.path"),
        ("eval.per_client=true", "data.local_test_fraction"),
        ("strategy.min_updates=50", "exceeds clients.per_round"),
        ("name=my run", "name"),
    ],
)
def test_bad_values_are_refused_with_the_key(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({}, [override])
    assert fragment in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_non_mapping_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        read_yaml(path)


def test_name_defaults_to_file_stem_and_dump_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "exp1.yaml"
    path.write_text("rounds: 4\nclients: {per_round: 2}\n")
    cfg = load_config(path, ["seed=7"])
    assert (cfg.name, cfg.rounds, cfg.seed, cfg.clients.per_round) == ("exp1", 4, 7, 2)
    again = tmp_path / "again.yaml"
    again.write_text(dump_yaml(cfg))
    assert load_config(again) == cfg


def test_changing_the_method_drops_the_old_methods_keys() -> None:
    base = {"peft": {"method": "lora", "r": 4}}
    assert load_config(base, ["peft.method=full"]).peft.method == "full"
    assert load_config(base, ["peft.method=lora", "peft.alpha=2"]).peft.r == 4  # same tag: keys kept
