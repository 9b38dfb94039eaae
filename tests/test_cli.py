import json
from pathlib import Path

import pytest
import yaml

from fedpeft.cli import main


def test_validate_reports_ok_and_errors(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rounds: 2\n")
    assert main(["validate", str(cfg), "clients.per_round=4", "--show"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "per_round: 4" in out
    assert main(["validate", str(cfg), "clients.per_rnd=4"]) == 2
    assert "clients.per_rnd: unknown key" in capsys.readouterr().err


def test_datasets_and_methods_list_registered_names(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["datasets"]) == 0
    assert "rotten_tomatoes" in capsys.readouterr().out
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "lora" in out and "reparameterised" in out


def test_run_from_yaml_with_overrides(tiny_config: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config))
    assert main(["run", str(cfg), "rounds=1", "--no-progress", "clients.per_round=2"]) == 0  # options anywhere
    out = capsys.readouterr().out
    assert "round   1:" in out and "finished in" in out and "test accuracy" in out
    summary = json.loads(next(Path(tiny_config["output"]["dir"]).glob("*/summary.json")).read_text())
    assert summary["rounds"] == 1 and summary["clients_per_round"] == 2
    with pytest.raises(SystemExit):
        main(["run", str(cfg), "--no-progress", "--bogus"])


def test_missing_config_file_exits_2(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "/no/such.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_methods_on_a_config_measures_each_method(tiny_config: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from fedpeft.build import build_setup as build
    from fedpeft.config import load_config

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config))
    assert main(["methods", str(cfg)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) >= {"lora", "houlsby", "sparse", "full"}
    expected = build(load_config(tiny_config)).trainable.numel()  # the configured method, as a run builds it
    method = load_config(tiny_config).peft.method
    assert rows[method].split()[2] == f"{expected:,}"
    assert "refused" not in "".join(rows.values())


def test_strategies_lists_every_strategy_with_its_kind(capsys) -> None:  # type: ignore[no-untyped-def]
    from fedpeft.cli import main
    from fedpeft.strategy import STRATEGIES

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in STRATEGIES.names():
        assert f"  {name} " in out
    assert "flora       LoRA-aware  mixed ranks" in out and "scaffold    general     one rank" in out


def test_transforms_lists_every_transform_with_where_it_applies(capsys) -> None:  # type: ignore[no-untyped-def]
    from typing import get_args

    from fedpeft.cli import main
    from fedpeft.config.plugins import TRANSFORM_CONFIGS
    from fedpeft.pipeline.transforms import TRANSFORMS

    configured = {
        n
        for cls in map(TRANSFORM_CONFIGS.get, TRANSFORM_CONFIGS.names())
        for n in get_args(cls.model_fields["name"].annotation)
    }
    assert configured == set(TRANSFORMS.names())  # every config has a transform and the other way round
    assert main(["transforms"]) == 0
    out = capsys.readouterr().out
    assert "  int4       up, down  block=64" in out and "  topk       up        density=0.1" in out


def test_version_quiet_and_verbose(tiny_config: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import logging

    import fedpeft

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"fedpeft {fedpeft.__version__}"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config))
    assert main(["run", str(cfg), "rounds=1", "-q"]) == 0
    assert capsys.readouterr().out == ""  # quiet: the results are in the run folder and the exit code
    assert main(["-v", "validate", str(cfg)]) == 0 and logging.getLogger("fedpeft").level == logging.INFO
    assert main(["validate", str(cfg), "-vv"]) == 0 and logging.getLogger("fedpeft").level == logging.DEBUG
    main(["validate", str(cfg)])
    assert logging.getLogger("fedpeft").level == logging.WARNING


def test_certs_refuse_to_replace_credentials_without_force(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["flower", "certs", str(tmp_path), "--nodes", "1"]) == 0
    ca = (tmp_path / "ca.crt").read_bytes()
    assert main(["flower", "certs", str(tmp_path), "--nodes", "1"]) == 2
    assert "pass --force" in capsys.readouterr().err and (tmp_path / "ca.crt").read_bytes() == ca
    assert main(["flower", "certs", str(tmp_path), "--nodes", "1", "--force"]) == 0
    assert (tmp_path / "ca.crt").read_bytes() != ca
