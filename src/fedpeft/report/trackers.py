"""Experiment tracking through the trackers' own libraries: every round's metrics, the config, the final
results and the cost ledger, into TensorBoard, MLflow (a local file store unless told) or Weights & Biases.

``output.trackers: [tensorboard, mlflow]`` in a config; the run folder keeps its own files as well.

Example:
    >>> trackers = open_trackers(cfg, Path("runs/quickstart"))  # doctest: +SKIP
    >>> trackers.log_round({"round": 1, "test": {"accuracy": 0.7}, "bytes_up": 1e6})  # doctest: +SKIP
    >>> trackers.finish(summary)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from fedpeft.config.load import dump_yaml
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError
from fedpeft.registry import Registry

log = logging.getLogger(__name__)
SKIP = {"round", "clients", "rejected", "dropped", "late", "status", "by_client"}  # per-client detail stays in files


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) record under slash-joined keys.

    Example:
        >>> flatten({"round": 2, "test": {"accuracy": 0.7, "labels": ["a"]}, "bytes_up": 10, "x": float("nan")})
        {'test/accuracy': 0.7, 'bytes_up': 10.0}
    """
    out: dict[str, float] = {}
    for key, value in record.items():
        if not prefix and key in SKIP:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


class Tracker(Protocol):
    def log_round(self, record: Mapping[str, Any]) -> None: ...
    def finish(self, summary: Mapping[str, Any]) -> None: ...
    def close(self, failed: bool) -> None: ...


TRACKERS: Registry[Callable[[RunConfig, Path, bool], Tracker]] = Registry("tracker")  # (cfg, run dir, resuming)


def _needs(module: str, name: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"output.trackers includes {name}, which needs {package}: pip install {package} "
            "(or bash scripts/setup.sh, which installs fedpeft's tracking extra)"
        ) from None


@TRACKERS.register("tensorboard")
class TensorBoardTracker:
    """Scalars per round (step = round) and the config and results as text, in ``<run>/tensorboard``."""

    def __init__(self, cfg: RunConfig, run_dir: Path, resuming: bool = False) -> None:
        _needs("tensorboard", "tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", f"```yaml\n{dump_yaml(cfg)}```", 0)

    def log_round(self, record: Mapping[str, Any]) -> None:
        for key, value in flatten(record).items():
            self.writer.add_scalar(key, value, int(record["round"]))
        self.writer.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        final = flatten({"final": summary.get("final") or {}, "ledger": summary.get("ledger") or {}})
        self.writer.add_text("summary", "\n".join(f"{k}: {v:.6g}" for k, v in final.items()), int(summary["rounds"]))

    def close(self, failed: bool) -> None:
        self.writer.close()


@TRACKERS.register("mlflow")
class MLflowTracker:
    """An MLflow run in experiment ``fedpeft``: the config as params, metrics per round (step = round), the
    final figures and ledger, summary.json as an artifact. ``output.mlflow_uri`` names the tracking server or
    store; the default is a local SQLite file beside the runs (``<output.dir>/mlflow.db``; MLflow 3 no longer
    takes a plain folder store), with its artifacts in ``<output.dir>/mlruns``. A resumed run goes on logging into
    its MLflow run."""

    def __init__(self, cfg: RunConfig, run_dir: Path, resuming: bool = False) -> None:
        _needs("mlflow", "mlflow", "mlflow-skinny")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # (its table-creation notices)
        self.uri = cfg.output.mlflow_uri or default_mlflow_uri(run_dir)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.id_file = run_dir / "mlflow_run_id"
        if resuming and self.id_file.is_file():
            self.run_id = self.id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        found = self.client.get_experiment_by_name("fedpeft")
        # a local store keeps its artifacts beside it too (MLflow's default is ./mlruns under the working folder)
        beside = None if cfg.output.mlflow_uri else (run_dir.parent / "mlruns").resolve().as_uri()
        experiment = found.experiment_id if found else self.client.create_experiment("fedpeft", beside)
        self.run_id = self.client.create_run(experiment, run_name=cfg.name).info.run_id
        self.id_file.write_text(self.run_id)
        params = [Param(k, str(v)[:500]) for k, v in _flat_config(cfg.model_dump(mode="json")).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def _metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def log_round(self, record: Mapping[str, Any]) -> None:
        self._metrics(flatten(record), int(record["round"]))

    def finish(self, summary: Mapping[str, Any]) -> None:
        final = flatten({"final": summary.get("final") or {}, "ledger": summary.get("ledger") or {}})
        self._metrics(final, int(summary["rounds"]))
        path = Path(str(summary.get("run_dir", ""))) / "summary.json"
        if path.is_file():
            self.client.log_artifact(self.run_id, str(path))

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


@TRACKERS.register("wandb")
class WandbTracker:
    """A Weights & Biases run (project ``fedpeft``; ``WANDB_MODE=offline`` keeps it on disk)."""

    def __init__(self, cfg: RunConfig, run_dir: Path, resuming: bool = False) -> None:
        wandb = _needs("wandb", "wandb", "wandb")
        self.run = wandb.init(project="fedpeft", name=cfg.name, dir=str(run_dir), config=cfg.model_dump(mode="json"))

    def log_round(self, record: Mapping[str, Any]) -> None:
        self.run.log(flatten(record), step=int(record["round"]))

    def finish(self, summary: Mapping[str, Any]) -> None:
        self.run.summary.update(flatten({"final": summary.get("final") or {}, "ledger": summary.get("ledger") or {}}))

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def default_mlflow_uri(run_dir: Path) -> str:
    """A local MLflow store beside the runs: ``sqlite:///<output.dir>/mlflow.db``."""
    return f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"


def _flat_config(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return out


class Callbacks:
    """A Python caller's callbacks, as a tracker: a plain function is called with each round's record; an
    object's ``on_round_end(record)``, ``on_evaluate(round, metrics)`` and ``on_run_end(summary)`` are called
    when it has them.

    Example:
        >>> class Stop:
        ...     def on_evaluate(self, round_, metrics):
        ...         print(round_, metrics["accuracy"])
        >>> Callbacks([Stop()]).log_round({"round": 2, "test": {"accuracy": 0.8}})
        2 0.8
    """

    def __init__(self, callbacks: Sequence[Any]) -> None:
        self.callbacks = list(callbacks)

    def log_round(self, record: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            if hasattr(cb, "on_round_end"):
                cb.on_round_end(record)
            elif callable(cb) and not hasattr(cb, "on_evaluate"):
                cb(record)
            if record.get("test") is not None and hasattr(cb, "on_evaluate"):
                cb.on_evaluate(int(record["round"]), record["test"])

    def finish(self, summary: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            if hasattr(cb, "on_run_end"):
                cb.on_run_end(summary)

    def close(self, failed: bool) -> None:
        return None


class Trackers:
    """The configured trackers, in the order given; each call goes to all of them. A tracker that fails
    (a tracking server gone away) is logged and the run goes on, its own files complete; the caller's
    callbacks are the caller's code, and their errors stop the run."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def _each(self, call: Callable[[Tracker], None], what: str) -> None:
        for t in self.trackers:
            if isinstance(t, Callbacks):
                call(t)
                continue
            try:
                call(t)
            except Exception as exc:
                log.warning("tracker %s failed to %s: %s", type(t).__name__, what, exc)

    def log_round(self, record: Mapping[str, Any]) -> None:
        self._each(lambda t: t.log_round(record), "log a round")

    def finish(self, summary: Mapping[str, Any]) -> None:
        self._each(lambda t: t.finish(summary), "log the results")

    def close(self, failed: bool = False) -> None:
        for t in self.trackers:
            try:
                t.close(failed)
            except Exception as exc:
                log.warning("tracker %s failed to close: %s", type(t).__name__, exc)


def open_trackers(cfg: RunConfig, run_dir: Path, extra: Sequence[Tracker] = (), resuming: bool = False) -> Trackers:
    """The trackers ``output.trackers`` names, started for the run in ``run_dir``, then ``extra`` (if one
    cannot start, those already started are closed)."""
    started: list[Tracker] = []
    try:
        for name in cfg.output.trackers:
            started.append(TRACKERS.get(name)(cfg, run_dir, resuming))
    except BaseException:
        Trackers(started).close(failed=True)
        raise
    return Trackers([*started, *extra])
