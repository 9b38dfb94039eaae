"""The run folder: runs/<name>/ with config.yaml, metrics.jsonl, partition.json, summary.json, plots, adapter."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedpeft.config.load import dump_yaml
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError
from fedpeft.report.trackers import Tracker, Trackers, open_trackers


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class RunDir:
    """Creates a fresh folder for a run and writes its files atomically.

    Example:
        >>> import tempfile
        >>> cfg = RunConfig(name="demo", output={"dir": tempfile.mkdtemp()})
        >>> RunDir.create(cfg).path.name
        'demo'
    """

    def __init__(self, path: Path, fresh: bool = False, trackers: Trackers | None = None) -> None:
        self.path, self.fresh = path, fresh  # fresh: this run made the folder (so may remove it)
        self.trackers = trackers or Trackers([])  # every metrics record also goes to these

    @classmethod
    def reopen(cls, path: Path, cfg: RunConfig, extra: Sequence[Tracker] = ()) -> RunDir:
        """A stopped run's folder, to go on with (its trackers resume their runs where they can)."""
        return cls(path, False, open_trackers(cfg, path, extra, resuming=True))

    @classmethod
    def create(cls, cfg: RunConfig, extra: Sequence[Tracker] = ()) -> RunDir:
        """``output.dir/name``, or ``name-2``, ``-3``... when that holds an earlier run (unless
        ``output.overwrite``); a folder that cannot be written is a one-line ConfigError."""
        root = Path(cfg.output.dir).expanduser()
        path = root / cfg.name
        suffix = 2
        try:
            root.mkdir(parents=True, exist_ok=True)
            while True:  # mkdir claims a name atomically: two runs started together never share a folder
                try:
                    path.mkdir()
                    fresh = True
                    break
                except FileExistsError:
                    if cfg.output.overwrite or not any(path.iterdir()):
                        fresh = False
                        break
                path = root / f"{cfg.name}-{suffix}"
                suffix += 1
            (path / "metrics.jsonl").write_text("")
            (path / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"output.dir={cfg.output.dir!r}: cannot write the run folder {path} ({exc.strerror or exc}); "
                "set output.dir to a folder you can write"
            ) from None
        try:
            return cls(path, fresh, open_trackers(cfg, path, extra))
        except BaseException:
            cls(path, fresh).discard()
            raise

    def discard(self) -> None:
        """Remove the folder if this run made it (a run refused before its first round leaves nothing)."""
        if self.fresh:
            shutil.rmtree(self.path, ignore_errors=True)

    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        return target

    def write_json(self, name: str, data: Any) -> Path:
        return self.write_text(name, json.dumps(_jsonable(data), indent=2) + "\n")

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.trackers.log_round(record)

    def read_metrics(self) -> list[dict[str, Any]]:
        lines = (self.path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
