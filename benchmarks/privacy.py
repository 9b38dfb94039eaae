"""Accuracy against epsilon for client-level DP, and accuracy under attacks with and without robust rules.

The workload is configs/quickstart.yaml (MiniLM + LoRA r=8, Rotten Tomatoes split by movie: 423 clients)
with 50 clients per round (so the noise on the mean is 1/50 of the noise on the sum), 2 local steps per
client, 10 rounds, seed 0. DP rows are central DP-FedAvg with adaptive clipping (start 0.05, median) and the
noise calibrated to each target epsilon at delta = 1/423^1.1 over the 10 rounds (Opacus RDP). Attack rows
make 10% of clients malicious. Results are appended to runs/benchmarks/privacy.jsonl as each row finishes.

Run: .venv/bin/python benchmarks/privacy.py [--only "lora eps=8,ffa_lora eps=8"] [overrides, e.g. threads=1]
     .venv/bin/python benchmarks/privacy.py --report      # the tables from saved results
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import fedpeft

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
WORKLOAD = ["clients.per_round=50", "clients.local_steps=2", "eval.every=0", "output.save_adapter=false"]
DP = ["privacy.client_dp=central", "privacy.adaptive_clip=true", "privacy.clip=0.05"]
CONFIGS: dict[str, list[str]] = {}
for method in ("lora", "ffa_lora"):
    strategy = [f"strategy.name={method}"] if method != "lora" else []
    CONFIGS[f"{method} eps=inf"] = strategy
    for eps in (8, 4, 2, 1):
        CONFIGS[f"{method} eps={eps}"] = [*strategy, *DP, f"privacy.target_epsilon={eps}"]
for attack in ("sign_flip", "scale", "noise"):
    hit = [f"attack.kind={attack}", "attack.fraction=0.1", "attack.scale=5", "attack.noise_std=0.05"]
    CONFIGS[f"{attack} / mean"] = hit
    CONFIGS[f"{attack} / median"] = [*hit, "robustness.aggregator=median"]
    CONFIGS[f"{attack} / trimmed_mean"] = [*hit, "robustness.aggregator=trimmed_mean", "robustness.trim_fraction=0.15"]
    CONFIGS[f"{attack} / multi_krum"] = [*hit, "robustness.aggregator=multi_krum", "robustness.byzantine=8"]


def row(name: str, s: dict) -> dict:
    dp = s.get("privacy") or {}
    return {"config": name, "accuracy": s["final"]["accuracy"], "macro_f1": s["final"]["macro_f1"],
            "loss": s["final"]["loss"], "epsilon": dp.get("epsilon"), "noise_multiplier": dp.get("noise_multiplier"),
            "clip": dp.get("clip"), "attackers": (s.get("attack") or {}).get("attackers"),
            "rejected": s["ledger"]["rejected_updates"], "wall_seconds": s["wall_seconds"]}


def report(out: Path) -> None:
    latest = {}
    for line in (out / "privacy.jsonl").read_text().splitlines():
        r = json.loads(line)
        latest[r["config"]] = r
    print("| config | epsilon | noise multiplier | final clip | accuracy | test loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in CONFIGS:
        r = latest.get(name)
        if r and "eps=" in name:
            eps = "inf" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
            z = "" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}"
            clip = "" if r["clip"] is None else f"{r['clip']:.3g}"
            print(f"| {name} | {eps} | {z} | {clip} | {r['accuracy']:.3f} | {r['loss']:.4f} |")
    print("\n| attack / aggregator | attackers | accuracy | test loss |")
    print("|---|---:|---:|---:|")
    for name in CONFIGS:
        r = latest.get(name)
        if r and " / " in name:
            print(f"| {name} | {r['attackers']} | {r['accuracy']:.3f} | {r['loss']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated config names")
    parser.add_argument("--out", default="runs/benchmarks", help="folder for runs and privacy.jsonl")
    parser.add_argument("--report", action="store_true", help="only print the tables of saved results")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run, e.g. threads=1")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(out)
        return
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = set(names) - set(CONFIGS)
    if unknown:
        sys.exit(f"unknown config(s) {sorted(unknown)}; choose from {list(CONFIGS)}")
    for name in names:
        started = time.perf_counter()
        run_name = "privacy-" + "".join(c if c.isalnum() else "-" for c in name)
        summary = fedpeft.run(QUICKSTART, [*WORKLOAD, *CONFIGS[name], *args.overrides, f"name={run_name}",
                                           f"output.dir={out}", "output.overwrite=true"], progress=False)
        with open(out / "privacy.jsonl", "a") as fh:
            fh.write(json.dumps(row(name, summary)) + "\n")
        print(f"[{name}] accuracy {summary['final']['accuracy']:.3f}, {time.perf_counter() - started:.0f} s", flush=True)
    report(out)
    print(f"\nReproduce: .venv/bin/python benchmarks/privacy.py {shlex.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
