"""Runs side by side: one table of quality against cost (bytes up and down, epsilon, wall time, energy) and
the trade-off plots with the Pareto front marked. Reads run folders (their summary.json) and benchmark
results (JSON-lines files, one run a row, as saved in benchmarks/results/).

Example:
    >>> entries = collect(["runs/quickstart", "benchmarks/results/compression.jsonl"])  # doctest: +SKIP
    >>> print(table(entries))  # doctest: +SKIP
    >>> plot(entries, Path("compare.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedpeft.errors import ConfigError

LOWER_IS_BETTER = {"perplexity", "loss"}
NAME_KEYS = ("name", "task", "method", "strategy", "config", "mode", "engine", "variant", "setting", "split")


@dataclass(frozen=True)
class Entry:
    """One run: its quality (``metric``: accuracy, perplexity...) and what it cost. None: not measured."""

    name: str
    metric: str
    quality: float
    bytes_up: float | None = None
    bytes_down: float | None = None
    epsilon: float | None = None
    wall_seconds: float | None = None
    energy_wh: float | None = None


def _quality(row: dict[str, Any]) -> tuple[str, float] | None:
    final = row.get("final") if isinstance(row.get("final"), dict) else {}
    for metric in ("accuracy", "perplexity"):
        for value in (row.get(metric), row.get(f"final_{metric}"), (final or {}).get(metric)):
            if isinstance(value, (int, float)):
                return metric, float(value)
    if isinstance(row.get("value"), (int, float)):
        return str(row.get("metric", "value")), float(row["value"])
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def from_summary(summary: dict[str, Any], name: str) -> Entry | None:
    """A run's summary.json (or a benchmark row) as an Entry; None when it holds no quality figure."""
    found = _quality(summary)
    if found is None:
        return None
    ledger = summary.get("ledger") or {}
    privacy = summary.get("privacy") or {}
    return Entry(
        name,
        found[0],
        found[1],
        _number(ledger.get("bytes_up", summary.get("bytes_up"))),
        _number(ledger.get("bytes_down", summary.get("bytes_down"))),
        _number(privacy.get("epsilon", summary.get("epsilon"))),
        _number(summary.get("wall_seconds")),
        _number(ledger.get("energy_wh_estimate", summary.get("energy_wh_estimate"))),
    )


def _row_name(row: dict[str, Any], prefix: str) -> str:
    parts = [str(row[k]) for k in NAME_KEYS if isinstance(row.get(k), (str, int)) and not isinstance(row[k], bool)]
    if "seed" in row:
        parts.append(f"seed {row['seed']}")
    return f"{prefix}: {' / '.join(parts)}" if parts else prefix


def collect(paths: Sequence[str]) -> list[Entry]:
    """Entries for run folders, folders of runs, results files and globs of them (in the order given)."""
    out: list[Entry] = []
    for pattern in paths:
        matches = sorted(glob.glob(pattern)) or [pattern]
        for match in matches:
            out.extend(_entries(Path(match)))
    if not out:
        raise ConfigError(f"nothing to compare in {list(paths)}: give run folders (runs/<name>) or results .jsonl")
    return out


def _entries(path: Path) -> list[Entry]:
    if path.is_file() and path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [e for r in rows if (e := from_summary(r, _row_name(r, path.stem))) is not None]
    if (path / "summary.json").is_file():
        entry = from_summary(json.loads((path / "summary.json").read_text(encoding="utf-8")), path.name)
        return [entry] if entry is not None else []
    if path.is_dir():
        return [e for sub in sorted(path.iterdir()) if (sub / "summary.json").is_file() for e in _entries(sub)]
    raise ConfigError(f"{path}: no such run folder or results file")


def pareto(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points no other point beats: at most the cost (x) and at least the quality (y), one of
    them strictly (at most the quality, for a lower-is-better metric).

    Example:
        >>> pareto([(1, 0.7), (2, 0.8), (3, 0.75), (1, 0.6)])
        [0, 1]
    """
    sign = 1 if higher_is_better else -1

    def beats(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and sign * a[1] >= sign * b[1] and (a[0] < b[0] or sign * a[1] > sign * b[1])

    return [i for i, p in enumerate(points) if not any(beats(q, p) for q in points)]


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def table(entries: Sequence[Entry]) -> str:
    """One row per run: quality, MB up and down, epsilon, wall time, energy."""
    width = max(12, *(len(e.name) for e in entries))
    head = f"{'run':<{width}} {'metric':>10} {'quality':>8} {'MB up':>9} {'MB down':>9} {'epsilon':>8} "
    head += f"{'wall s':>8} {'Wh':>6}"
    lines = [head, "-" * len(head)]
    for e in entries:
        lines.append(
            f"{e.name:<{width}} {e.metric:>10} {e.quality:>8.4g} {_fmt(e.bytes_up, 1e6):>9} "
            f"{_fmt(e.bytes_down, 1e6):>9} {_fmt(e.epsilon, digits=2):>8} {_fmt(e.wall_seconds, digits=0):>8} "
            f"{_fmt(e.energy_wh, digits=2):>6}"
        )
    return "\n".join(lines)


AXES = (  # x-axis: the cost, its label, its scale
    ("bytes_up", "uplink MB", 1e6),
    ("epsilon", "epsilon (privacy spent)", 1.0),
    ("wall_seconds", "wall time (s)", 1.0),
)


def plot(entries: Sequence[Entry], path: Path, metric: str | None = None) -> Path:
    """Quality against uplink bytes, epsilon and wall time (one panel each), the Pareto front marked, for the
    runs measured in ``metric`` (default: the most common one)."""
    from fedpeft.report.plots import _pyplot

    plt = _pyplot()
    metric = metric or Counter(e.metric for e in entries).most_common(1)[0][0]
    chosen = [e for e in entries if e.metric == metric]
    fig, axes = plt.subplots(1, len(AXES), figsize=(5 * len(AXES), 4.2))
    for ax, (key, label, scale) in zip(axes, AXES):
        have = [e for e in chosen if getattr(e, key) is not None]
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if not have:
            ax.text(0.5, 0.5, f"no run reports {label}", ha="center", va="center", transform=ax.transAxes)
            continue
        pts = [(float(getattr(e, key)) / scale, e.quality) for e in have]
        ax.scatter(*zip(*pts), s=18, c="C0", alpha=0.7)
        front = sorted(pareto(pts, metric not in LOWER_IS_BETTER), key=lambda i: pts[i][0])
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "o-", c="C3", label="Pareto front")
        for i in front:
            ax.annotate(have[i].name[-40:], pts[i], fontsize=6, xytext=(3, 3), textcoords="offset points")
        if key == "bytes_up" and max(p[0] for p in pts) > 20 * max(min(p[0] for p in pts), 1e-9):
            ax.set_xscale("log")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"{len(chosen)} runs: {metric} against cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
