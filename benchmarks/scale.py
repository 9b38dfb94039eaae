"""Memory at scale: one round of N clients with kept per-client state (AdamW moments), against its budget.

Each client (quickstart model: MiniLM + LoRA r=8, 332k trainable parameters, 2.7 MB of AdamW moments) trains
one local step, keeps its optimiser state, and sends its update; the round's updates are folded into the
mean as they arrive (streaming aggregation), and the client-state store keeps up to its budget (1 GiB) in
memory, spilling the rest to safetensors files. Reported per N: the peak memory of the run's processes (the
run and its client workers; proportional set size, so pages the workers share with it count once), the reference
(runtime + frozen base: the same job with 10 clients), what the store keeps in memory, the bound
1.2 x (reference + store), the state spilled to disk, and the wall time.

Run: .venv/bin/python benchmarks/scale.py [--clients 1000,10000] [overrides]   (threads=2 by default)
     .venv/bin/python benchmarks/scale.py --report
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from flower_vs_sim import PeakMemory, pss, tree
from harness import QUICKSTART, latest, parser, reproduce

STORE_BUDGET = 1 << 30  # ClientStateStore's default in-memory budget


def job(n: int) -> list[str]:
    return [
        "rounds=1",
        "partition.method=iid",
        f"partition.num_clients={n}",
        "partition.min_examples_per_client=1",  # 10,000 clients share 11,527 examples (1-2 each)
        f"clients.per_round={n}",
        "clients.local_steps=1",
        "clients.keep_optimizer_state=true",
        "data.max_test_examples=200",
        "eval.every=0",
        "output.plot=false",
        "output.save_adapter=false",
    ]


def run(n: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [*job(n), "threads=2", *extra, f"output.dir={tmp}"]
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedpeft.cli", "run", str(QUICKSTART), "--no-progress", *overrides],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with PeakMemory(lambda: tree(psutil.Process(proc.pid)), pss) as mem:
            log, _ = proc.communicate()
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(log[-3000:], file=sys.stderr)
            return {"clients": n, "status": "failed", "wall_seconds": wall}
        state = Path(tmp) / "quickstart" / "client_state"
        spilled = sum(f.stat().st_size for f in state.glob("*.safetensors")) if state.exists() else 0
        summary = json.loads((Path(tmp) / "quickstart" / "summary.json").read_text())
    return {
        "clients": n,
        "status": "ok",
        "wall_seconds": wall,
        "peak_pss_bytes": mem.peak,
        "spilled_bytes": spilled,
        "state_bytes": n * 8 * summary["ledger"]["trainable_params"],  # AdamW's two fp32 moments per client
        "final_accuracy": summary["final"]["accuracy"],
        "overrides": extra,
    }


def report(path: Path) -> None:
    rows = latest(path, lambda r: r["clients"])
    ref = rows.get(10)
    print(
        "| clients | client state | peak memory (PSS) | runtime + base (10 clients) | store in memory "
        "| 1.2 x (ref + store) "
        "| spilled | wall |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in sorted(rows.items()):
        if r["status"] != "ok" or n == 10 or ref is None:
            continue
        kept = min(STORE_BUDGET, r["state_bytes"])  # the store keeps up to its budget, spills the rest
        bound = 1.2 * (ref["peak_pss_bytes"] + kept)
        ok = "within" if r["peak_pss_bytes"] <= bound else "OVER"
        print(
            f"| {n:,} | {r['state_bytes'] / 2**30:.2f} GiB | {r['peak_pss_bytes'] / 2**30:.2f} GiB | "
            f"{ref['peak_pss_bytes'] / 2**30:.2f} GiB | "
            f"{kept / 2**30:.2f} GiB | {bound / 2**30:.2f} GiB ({ok}) | {r['spilled_bytes'] / 2**30:.2f} GiB | "
            f"{r['wall_seconds'] / 60:.1f} min |"
        )


def main() -> None:
    p = parser(__doc__, "scale.jsonl", what="client count")
    p.add_argument("--clients", default="1000", help="comma-separated client counts (10 is always run first)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for n in [10, *(int(c) for c in args.clients.split(","))]:
            row = run(n, args.overrides)
            with open(out / "scale.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{n} clients: {row['status']}, {row['wall_seconds']:.0f} s", flush=True)
    report(out / "scale.jsonl")
    reproduce("scale.py")


if __name__ == "__main__":
    main()
