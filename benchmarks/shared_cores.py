"""Two fedpeft runs on one machine: each run's wall time beside the same run alone, with the default
``threads`` (the runs split the cores) and with every run pinned to every core (what the default was before:
oversubscribed). The same numbers come out either way.

Each job is the quickstart (``configs/quickstart.yaml``), ``rounds=2`` unless told, run as its own
``fedpeft run`` process; the pair is started together. Results are appended to
runs/benchmarks/shared_cores.jsonl.

Run: .venv/bin/python benchmarks/shared_cores.py [--rounds 2] [--only default,pinned]
     .venv/bin/python benchmarks/shared_cores.py --report
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness import QUICKSTART, chosen, latest, parser, reproduce

RESULTS = "shared_cores.jsonl"
MODES = {"default": [], "pinned": [f"threads={len(os.sched_getaffinity(0))}"]}
FEDPEFT = [sys.executable, "-m", "fedpeft.cli", "run", str(QUICKSTART), "--no-progress", "output.overwrite=true"]


def start(name: str, out: Path, extra: list[str]) -> subprocess.Popen:
    cmd = [*FEDPEFT, f"name={name}", f"output.dir={out}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def timed(procs: list[subprocess.Popen]) -> list[float]:
    """Each process's wall time from now, once all have ended (exits on a failed run)."""
    began, ended = time.perf_counter(), {}
    while len(ended) < len(procs):
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.perf_counter() - began
                if p.returncode != 0:
                    sys.exit(f"a run failed:\n{p.stderr.read() if p.stderr else ''}")
        time.sleep(0.2)
    return [ended[i] for i in range(len(procs))]


def final(out: Path, name: str) -> dict:
    return json.loads((out / name / "summary.json").read_text())["final"]


def measure(mode: str, out: Path, extra: list[str]) -> dict:
    (alone,) = timed([start(f"{mode}-alone", out, [*MODES[mode], *extra])])
    pair = timed([start(f"{mode}-{k}", out, [*MODES[mode], *extra]) for k in "ab"])
    finals = [final(out, f"{mode}-{k}") for k in ("alone", "a", "b")]
    return {
        "mode": mode,
        "overrides": [*MODES[mode], *extra],
        "alone_seconds": alone,
        "pair_seconds": pair,
        "slowdown": max(pair) / alone,
        "same_numbers": all(f == finals[0] for f in finals),
        "accuracy": finals[0].get("accuracy"),
        "cores": len(os.sched_getaffinity(0)),
    }


def report(path: Path) -> None:
    rows = latest(path, lambda r: r["mode"])
    print(f"{'threads':<9} {'alone s':>8} {'pair s (each)':>15} {'slowdown':>9}  same numbers")
    for r in rows.values():
        pair = " / ".join(f"{s:.0f}" for s in r["pair_seconds"])
        print(f"{r['mode']:<9} {r['alone_seconds']:>8.0f} {pair:>15} {r['slowdown']:>8.2f}x  {r['same_numbers']}")


def main() -> None:
    p = parser(__doc__ or "", RESULTS, "mode")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    out = Path(args.out)
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        for mode in chosen(args.only, list(MODES)):
            r = measure(mode, out, [f"rounds={args.rounds}", *args.overrides])
            with open(out / RESULTS, "a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"[{mode}] alone {r['alone_seconds']:.0f} s, pair {r['slowdown']:.2f}x", flush=True)
    report(out / RESULTS)
    reproduce("shared_cores.py")


if __name__ == "__main__":
    main()
