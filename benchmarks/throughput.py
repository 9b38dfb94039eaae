"""Throughput of one job on every way fedpeft can run it here, and on Flower's simulation engine.

The job is benchmarks/flower_vs_sim.py's (the quickstart cut to 4 IID clients, all 4 each round, 8 local steps
of 8 examples, 4 rounds). Run one after the other in one invocation, so that the ratios come from one
machine state:
  sequential        one process, clients one after another, `threads` torch threads (default: 2)
  workers           `clients.workers=2`: two forked processes, one thread each, a client each at a time
  cohort            `clients.cohort=4`: the round's 4 clients in one forward pass, `threads` threads
  flower_simulation Flower's Ray simulation engine, two virtual SuperNodes (single-thread actors), the same
                    fedpeft ClientApp
Printed per engine: examples trained per second, seconds per round (median), start-up (the wall time not
spent in rounds), the whole job, peak memory of all its processes; then each engine's ratio to Flower's.

Run: .venv/bin/python benchmarks/throughput.py [--only sequential,workers,cohort,flower_simulation] [overrides]
     .venv/bin/python benchmarks/throughput.py --report
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from flower_vs_sim import run_engine
from harness import chosen, latest, parser, reproduce

VARIANTS = {  # name -> (engine, overrides on top of flower_vs_sim's WORKLOAD)
    "sequential": ("simulator", ["threads=2", "clients.workers=1"]),
    "workers": ("simulator", ["threads=2", "clients.workers=2"]),
    "cohort": ("simulator", ["threads=2", "clients.cohort=4"]),
    "flower_simulation": ("flower_simulation", []),
}


def report(path: Path) -> None:
    rows = latest(path, lambda r: r["variant"])
    flower = rows.get("flower_simulation")
    print(
        "| engine | examples / s | per round | start-up | whole job | peak memory | round vs Flower | job vs Flower |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in VARIANTS:
        r = rows.get(name)
        if r is None or r["status"] != "ok":
            continue
        vs_round = vs_job = "-"
        if flower is not None and flower["status"] == "ok":
            vs_round = f"{flower['round_seconds'] / r['round_seconds']:.2f}x"
            vs_job = f"{flower['wall_seconds'] / r['wall_seconds']:.2f}x"
        print(
            f"| {name} | {r['examples_per_second']:.1f} | {r['round_seconds']:.2f} s | {r['startup_seconds']:.1f} s | "
            f"{r['wall_seconds']:.1f} s | {r['peak_rss_bytes'] / 2**30:.2f} GiB | {vs_round} | {vs_job} |"
        )


def main() -> None:
    args = parser(__doc__, "throughput.jsonl", what="engine").parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for name in chosen(args.only, list(VARIANTS)):
            engine, extra = VARIANTS[name]
            with tempfile.TemporaryDirectory() as tmp:
                row = {"variant": name, **run_engine(engine, Path(tmp), [*extra, *args.overrides])}
            with open(out / "throughput.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name}: {row['status']}, {row['wall_seconds']:.1f} s", flush=True)
    report(out / "throughput.jsonl")
    reproduce("throughput.py")


if __name__ == "__main__":
    main()
