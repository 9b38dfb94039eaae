"""What every benchmark script shares: its command line, the latest saved row per key, one fedpeft job per
named config appended to a JSON-lines file, and the reproduce line."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import fedpeft

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # the shipped configs
QUICKSTART = CONFIG_DIR / "quickstart.yaml"
RESULTS = Path(__file__).resolve().parent / "results"  # the results saved with the repository


def parser(doc: str, results: str, what: str = "config") -> argparse.ArgumentParser:
    """--only, --out, --report and trailing overrides; a script adds its own options."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--only", help=f"comma-separated {what} names")
    p.add_argument("--out", default="runs/benchmarks", help=f"folder for runs and {results}")
    p.add_argument("--report", action="store_true", help="only print the table and plot of saved results")
    p.add_argument("overrides", nargs="*", help="extra overrides for every run, e.g. threads=1")
    return p


def chosen(only: str | None, known: Sequence[str]) -> list[str]:
    """The names --only asks for (all by default); exits naming any unknown one."""
    names = only.split(",") if only else list(known)
    unknown = set(names) - set(known)
    if unknown:
        sys.exit(f"unknown name(s) {sorted(unknown)}; choose from {list(known)}")
    return names


def latest(path: Path, key: Callable[[dict], Hashable]) -> dict[Hashable, dict]:
    """The last row saved for each key of a JSON-lines results file; without one under ``--out`` (a fresh
    clone), the results saved with the repository (benchmarks/results/)."""
    if not path.exists() and (RESULTS / path.name).exists():
        print(f"({path} not found: reporting the saved {RESULTS / path.name})", file=sys.stderr)
        path = RESULTS / path.name
    rows: dict[Hashable, dict] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows[key(r)] = r
    return rows


def run_and_append(
    name: str,
    overrides: list[str],
    out: Path,
    results: str,
    prefix: str,
    row: Callable[[str, dict], dict],
    config: Path = QUICKSTART,
) -> dict[str, Any]:
    """One fedpeft job (on the quickstart config unless told); its row is appended to ``out/results`` at once."""
    started = time.perf_counter()
    run_name = prefix + "".join(c if c.isalnum() else "-" for c in name)
    summary = fedpeft.run(
        config, [*overrides, f"name={run_name}", f"output.dir={out}", "output.overwrite=true"], progress=False
    )
    with open(out / results, "a") as fh:
        fh.write(json.dumps(row(name, summary)) + "\n")
    final = summary["final"]
    figure = f"accuracy {final['accuracy']:.3f}" if "accuracy" in final else f"perplexity {final['perplexity']:.2f}"
    print(f"[{name}] {figure}, {time.perf_counter() - started:.0f} s", flush=True)
    return summary


def tradeoffs(name: str, out: Path) -> None:
    """This benchmark's saved runs through ``fedpeft compare``: one table of quality against bytes, epsilon
    and time, and the trade-off plots with the Pareto front (``out/<name>_tradeoffs.png``)."""
    from fedpeft.errors import FedPeftError
    from fedpeft.report.compare import collect, plot, table

    path = out / f"{name}.jsonl"
    if not path.exists():
        path = RESULTS / path.name
    try:
        entries = collect([str(path)])
    except FedPeftError as exc:
        print(f"(no trade-offs to show: {exc})")
        return
    print(f"\nAll saved runs, quality against cost (fedpeft compare {path}):")
    print(table(entries))
    print(f"trade-off plots: {plot(entries, out / f'{name}_tradeoffs.png')}")


def reproduce(script: str) -> None:
    print(f"\nReproduce: .venv/bin/python benchmarks/{script} {shlex.join(sys.argv[1:])}".rstrip())
