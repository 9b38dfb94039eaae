"""The same workload on three engines: fedpeft's in-process simulator, Flower's simulation engine (Ray, two
virtual SuperNodes) and a Flower deployment on loopback (SuperLink + two SuperNodes, TLS and node auth).

Workload: configs/quickstart.yaml cut to WORKLOAD below (MiniLM + LoRA, 4 IID clients, all 4 each round,
8 local steps, one thread each). Reported per engine: start-up (wall time before the first round: process
and engine start, build), seconds per round (the server's round time, median), what a Flower ClientApp
process spends per message before it trains (its start, median, and building fedpeft's client, median;
Ray's actors persist between messages; in the deployment a fresh ClientApp process hands the work to the
node's worker, whose start, once per node, is shown too), the
peak of the summed resident memory of all the engine's processes (shared pages count once per process),
and the final accuracy (equal across engines: same seed, same updates).

Run: .venv/bin/python benchmarks/flower_vs_sim.py [--only simulator,flower_simulation,flower_deployment]
     (scripts/setup.sh installs Ray, which Flower's simulation engine needs)
     .venv/bin/python benchmarks/flower_vs_sim.py --report
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

import psutil
from harness import QUICKSTART, chosen, latest, parser, reproduce

from fedpeft.runtime.flower.federation import LocalFederation

ENGINES = ["simulator", "flower_simulation", "flower_deployment"]
WORKLOAD = [
    "rounds=4",
    "data.max_train_examples=800",
    "data.max_test_examples=200",
    "partition.method=iid",
    "partition.num_clients=4",
    "clients.per_round=4",
    "clients.local_steps=8",
    "threads=1",
    "eval.every=0",
    "output.plot=false",
    "output.save_adapter=false",
]


def rss(p: psutil.Process) -> int:
    return p.memory_info().rss


def pss(p: psutil.Process) -> int:
    """Proportional set size (Linux): pages shared with other processes count once over all of them."""
    return p.memory_full_info().pss


class PeakMemory:
    """Samples the summed ``measure`` (RSS by default) of ``processes()`` every 0.2 s in a thread; ``peak`` in
    bytes."""

    def __init__(self, processes, measure=rss) -> None:
        self.processes, self.measure, self.peak, self._stop = processes, measure, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for p in self.processes():
                try:
                    total += self.measure(p)
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def run_engine(engine: str, folder: Path, extra: list[str]) -> dict:
    overrides = [*WORKLOAD, *extra, f"output.dir={folder / 'runs'}"]
    start = time.perf_counter()
    if engine == "simulator":
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedpeft.cli", "run", str(QUICKSTART), "--no-progress", *overrides],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with PeakMemory(lambda: tree(psutil.Process(proc.pid))) as mem:
            log, _ = proc.communicate()
        ok, run_dir = proc.returncode == 0, folder / "runs" / "quickstart"
    else:
        kind = "simulation" if engine == "flower_simulation" else "deployment"
        with LocalFederation(folder / "federation", nodes=2, engine=kind) as fed:
            with PeakMemory(fed.processes) as mem:
                result = fed.run(QUICKSTART, overrides, timeout=1200)
        log, ok, run_dir = result.log, result.ok, result.run_dir or folder
        if not ok:
            print(log[-3000:], file=sys.stderr)
    wall = time.perf_counter() - start
    if not ok:
        return {"engine": engine, "status": "failed", "wall_seconds": wall}
    summary = json.loads((run_dir / "summary.json").read_text())
    rounds = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    round_s = [r["seconds"]["train"] + r["seconds"]["aggregate"] for r in rounds]
    clients = [c for r in rounds for c in r["clients"].values()]
    per_message = {
        k: median(c[k] for c in clients) if all(k in c for c in clients) else None
        for k in ("process_start_seconds", "build_seconds", "train_seconds")
    }
    per_message["worker_start_max"] = max((c.get("worker_start_seconds", 0.0) for c in clients), default=0.0)
    samples = [sum(c.get("samples", 0.0) for c in r["clients"].values()) for r in rounds]
    return {
        "engine": engine,
        "status": "ok",
        "wall_seconds": wall,
        "startup_seconds": wall - sum(round_s) - sum(r["seconds"]["evaluate"] for r in rounds),
        "round_seconds": median(round_s),
        "examples_per_second": sum(samples) / sum(round_s),
        "per_message": per_message,
        "peak_rss_bytes": mem.peak,
        "final_accuracy": summary["final"]["accuracy"],
        "final_loss": summary["final"]["loss"],
        "bytes_up": summary["ledger"]["bytes_up"],
    }


def report(path: Path) -> None:
    rows = latest(path, lambda r: r["engine"])
    print(
        "| engine | start-up | per round | ClientApp start + build per message | client training per "
        "message | peak memory (all processes) | final accuracy / loss |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for engine in ENGINES:
        r = rows.get(engine)
        if r is None or r["status"] != "ok":
            continue
        m = r["per_message"]
        if engine == "flower_deployment":
            start = f"{m['process_start_seconds']:.1f} s + {m['build_seconds']:.1f} s"
            if m.get("worker_start_max"):
                start += f" (node worker start {m['worker_start_max']:.1f} s, once)"
        else:
            start = "- (one process)" if engine == "simulator" else "- (Ray actors persist)"
        print(
            f"| {engine} | {r['startup_seconds']:.1f} s | {r['round_seconds']:.1f} s | {start} | "
            f"{m['train_seconds']:.1f} s | {r['peak_rss_bytes'] / 2**30:.2f} GiB | "
            f"{r['final_accuracy']:.3f} / {r['final_loss']:.4f} |"
        )


def main() -> None:
    p = parser(__doc__, "flower_vs_sim.jsonl", what="engine")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for engine in chosen(args.only, ENGINES):
            with tempfile.TemporaryDirectory() as tmp:
                row = run_engine(engine, Path(tmp), args.overrides)
            with open(out / "flower_vs_sim.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{engine}: {row['status']}, {row['wall_seconds']:.1f} s", flush=True)
    report(out / "flower_vs_sim.jsonl")
    reproduce("flower_vs_sim.py")


if __name__ == "__main__":
    main()
