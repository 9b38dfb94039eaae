"""Tracking: a run's config, metrics per round and results, read back with each tracker's own reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fedpeft
from fedpeft.report.trackers import flatten


def test_a_two_round_run_is_logged_to_tensorboard_and_mlflow(tiny_config: dict) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = fedpeft.run(tiny_config, ["rounds=2", "output.trackers=[tensorboard,mlflow]"], progress=False)
    run_dir = Path(summary["run_dir"])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    accuracy = [(r["round"], r["test"]["accuracy"]) for r in records if r.get("test")]
    uplink = [(r["round"], r["bytes_up"]) for r in records if "bytes_up" in r]
    assert len(accuracy) == 3 and len(uplink) == 2  # round 0 (before training), 1 and 2

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars("test/accuracy")] == accuracy
    assert [(e.step, e.value) for e in events.Scalars("bytes_up")] == uplink

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir.parent / 'mlflow.db'}")
    run = client.get_run((run_dir / "mlflow_run_id").read_text())
    history = client.get_metric_history(run.info.run_id, "test/accuracy")
    assert sorted((m.step, pytest.approx(m.value)) for m in history) == accuracy
    assert run.data.metrics["final/accuracy"] == pytest.approx(summary["final"]["accuracy"])
    assert run.data.params["peft.method"] == "lora" and run.data.params["rounds"] == "2"
    assert run.data.metrics["ledger/bytes_up"] == summary["ledger"]["bytes_up"]
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(run_dir.parent.resolve()) and (artifacts / "summary.json").is_file()


def test_a_missing_tracker_library_is_refused_with_the_install_line(tiny_config: dict, monkeypatch) -> None:
    import builtins

    from fedpeft.errors import ConfigError

    real = builtins.__import__

    def no_wandb(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "wandb":
            raise ImportError("no wandb here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ConfigError, match="needs wandb: pip install wandb"):
        fedpeft.run(tiny_config, ["output.trackers=[wandb]"], progress=False)
    assert not any(Path(tiny_config["output"]["dir"]).glob("*"))  # and leaves no folder


def test_flatten_keeps_finite_numbers_under_their_paths() -> None:
    got = flatten({"round": 3, "test": {"accuracy": 0.5, "loss": float("inf")}, "privacy": {"epsilon": 2}, "ok": True})
    assert got == {"test/accuracy": 0.5, "privacy/epsilon": 2.0}


def test_a_failing_tracker_is_logged_and_the_run_goes_on(tiny_config: dict, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from fedpeft.report.trackers import TensorBoardTracker

    def broken(self, record):  # type: ignore[no-untyped-def]
        raise ConnectionError("tracking server gone")

    monkeypatch.setattr(TensorBoardTracker, "log_round", broken)
    with caplog.at_level(logging.WARNING, logger="fedpeft"):
        summary = fedpeft.run(tiny_config, ["rounds=2", "output.trackers=[tensorboard]"], progress=False)
    assert summary["rounds"] == 2 and "TensorBoardTracker failed to log a round: tracking server gone" in caplog.text
    assert len((Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()) == 3
