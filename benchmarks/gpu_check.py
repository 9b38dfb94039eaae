"""The quickstart on an accelerator: fp32 against the CPU, bf16 for speed, throughput and peak GPU memory.

Runs the quickstart job (cut to GPU_CHECK below so that the CPU leg takes a few minutes) three times in this
process: on the CPU in fp32 (the reference), on the accelerator in fp32 (its final loss and accuracy must
match the CPU's within float tolerance) and on the accelerator in bf16 (autocast). For each it prints
training examples per second, seconds per round and the accelerator's peak memory. Exits with a message,
and status 0, on a machine without CUDA.

Run: .venv/bin/python benchmarks/gpu_check.py [--cohort K] [overrides...]
     results: appended to runs/benchmarks/gpu_check.jsonl (copy the rows to benchmarks/results/)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import QUICKSTART, reproduce

import fedpeft

GPU_CHECK = [
    "rounds=4",
    "data.max_train_examples=2000",
    "data.max_test_examples=500",
    "eval.every=0",
    "output.plot=false",
    "output.save_adapter=false",
    "output.checkpoint=false",
]


def one(device: str, precision: str, extra: list[str], folder: Path) -> dict:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    summary = fedpeft.run(
        QUICKSTART,
        [*GPU_CHECK, *extra, f"device={device}", f"precision={precision}", f"output.dir={folder}"],
        progress=False,
    )
    wall = time.perf_counter() - start
    rounds = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()][1:]
    train = sum(r["seconds"]["train"] for r in rounds)
    samples = sum(c.get("samples", 0.0) for r in rounds for c in r["clients"].values())
    return {
        "device": device,
        "precision": precision,
        "name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "wall_seconds": wall,
        "round_seconds": train / max(len(rounds), 1),
        "examples_per_second": samples / train if train else math.nan,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0,
        "final_loss": summary["final"]["loss"],
        "final_accuracy": summary["final"]["accuracy"],
        "extra": extra,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cohort", type=int, default=0, help="also train K clients per forward pass on the accelerator")
    p.add_argument("--out", default="runs/benchmarks")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check.")
        print("Run it on a machine with an NVIDIA GPU and a CUDA build of torch.")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        legs = [("cpu", "fp32", []), ("cuda", "fp32", []), ("cuda", "bf16", [])]
        if args.cohort:
            legs.append(("cuda", "fp32", [f"clients.cohort={args.cohort}"]))
        for device, precision, extra in legs:
            rows.append(one(device, precision, [*args.overrides, *extra], Path(tmp) / f"{device}-{precision}"))
            r = rows[-1]
            print(
                f"{device:>5} {precision} {' '.join(extra):<16} {r['examples_per_second']:8.1f} examples/s "
                f"{r['round_seconds']:6.2f} s/round  peak GPU {r['peak_gpu_bytes'] / 2**30:5.2f} GiB  "
                f"loss {r['final_loss']:.6f}  accuracy {r['final_accuracy']:.4f}",
                flush=True,
            )
    cpu, gpu = rows[0], rows[1]
    close = (
        math.isclose(cpu["final_loss"], gpu["final_loss"], rel_tol=1e-3)
        and abs(cpu["final_accuracy"] - gpu["final_accuracy"]) <= 0.005
    )
    print(f"fp32 on {gpu['name']} against the CPU: {'MATCH' if close else 'MISMATCH'} (loss rel. tol. 1e-3)")
    print(
        f"speed-up over the CPU: fp32 {gpu['examples_per_second'] / cpu['examples_per_second']:.1f}x, "
        f"bf16 {rows[2]['examples_per_second'] / cpu['examples_per_second']:.1f}x"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gpu_check.jsonl", "a") as f:
        for r in rows:
            f.write(json.dumps({**r, "matches_cpu": close}) + "\n")
    reproduce("gpu_check.py")
    sys.exit(0 if close else 1)


if __name__ == "__main__":
    main()
