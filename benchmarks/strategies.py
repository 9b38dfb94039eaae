"""Every strategy on the quickstart workload, under IID and Dirichlet(0.1) label skew; the LoRA-aware ones also
with clients of mixed LoRA ranks (30% rank 4, 50% rank 8, 20% rank 16).

The workload is configs/quickstart.yaml (MiniLM + LoRA r=8 on Rotten Tomatoes, 10 clients per round,
10 rounds, lr 1e-3) with the data split into 50 clients, 5 local steps (40 examples) per client and round,
and 10% of each
client's examples held out. Global accuracy is on 500 central test snippets. Per client: the global
model's accuracy on each client's held-out examples, and the personalised model's (the client's rank and
personal tensors, then 3 local fine-tuning steps), as the mean and the mean of the worst 10% of clients.
Bytes are the real payloads, summed over the run. Results are appended to runs/benchmarks/strategies.jsonl.

Run: .venv/bin/python benchmarks/strategies.py [--only fedavg,flora] [--splits iid] [--ranks mixed] [overrides]
     .venv/bin/python benchmarks/strategies.py --report     # table and runs/benchmarks/strategies.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness import QUICKSTART, latest, reproduce, tradeoffs

import fedpeft

WORKLOAD = [
    "partition.num_clients=50",
    "clients.local_steps=5",
    "data.local_test_fraction=0.1",
    "eval.per_client=true",
    "eval.finetune_steps=3",
    "eval.every=0",
    "data.max_test_examples=500",
]
SPLITS = {
    "iid": ["partition.method=iid"],
    "dir0.1": ["partition.method=dirichlet", "partition.alpha=0.1", "partition.dirichlet_over=clients"],
}
# Server settings are one typical value each, not tuned: FedAvgM's momentum 0.5 with step 0.5 keeps the
# long-run step at 1 (as FedAvg); FedAdam / FedYogi / FedAdagrad use Reddi et al.'s eta 1e-2, tau 1e-3.
STRATEGIES: dict[str, list[str]] = {
    "fedavg": [],
    "fedprox": ["strategy.mu=0.01"],
    "fedavgm": ["strategy.momentum=0.5", "strategy.server_lr=0.5"],
    "fedadam": [],
    "fedyogi": [],
    "fedadagrad": [],
    "scaffold": [],
    "ffa_lora": [],
    "fedsa_lora": [],
    "flora": [],
    "flexlora": [],
    "hetlora": [],
}
MIXED = ["peft.r=16", "resources.rank_tiers={4: 0.3, 8: 0.5, 16: 0.2}"]
MIXED_STRATEGIES = ["fedavg", "ffa_lora", "fedsa_lora", "flora", "flexlora", "hetlora"]


def jobs(names: list[str], splits: list[str]) -> list[tuple[str, str, str, list[str]]]:
    """(strategy, split, ranks, overrides) for every run of the benchmark."""
    out = []
    for split in splits:
        for name in names:
            base = [f"strategy.name={name}", *STRATEGIES[name], *SPLITS[split]]
            out.append((name, split, "8", base))
            if name in MIXED_STRATEGIES:
                out.append((name, split, "4/8/16", [*base, *MIXED]))
    return out


def row(name: str, split: str, ranks: str, s: dict) -> dict:
    led, pc = s["ledger"], s["per_client"] or {}
    own = pc.get("personalised") or {}
    return {
        "strategy": name,
        "split": split,
        "ranks": ranks,
        "accuracy": s["final"]["accuracy"],
        "macro_f1": s["final"]["macro_f1"],
        "client_mean": pc.get("mean"),
        "client_worst10": pc.get("worst_10pct"),
        "personal_mean": own.get("mean"),
        "personal_worst10": own.get("worst_10pct"),
        "majority": s["data"].get("majority_baseline"),
        "bytes_up": led["bytes_up"],
        "bytes_down": led["bytes_down"],
        "failed_rounds": led["failed_rounds"],
        "wall_seconds": s["wall_seconds"],
    }


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| strategy | split | ranks | global acc | clients: global mean / worst 10% | clients: personalised mean "
        "/ worst 10% | uplink | downlink | wall |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['split']} | {r['ranks']} | {r['accuracy']:.3f} | {_f(r['client_mean'])} / "
            f"{_f(r['client_worst10'])} | {_f(r['personal_mean'])} / {_f(r['personal_worst10'])} | "
            f"{r['bytes_up'] / 1e6:.1f} MB | {r['bytes_down'] / 1e6:.1f} MB | {r['wall_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


# the share of the majority class in the 500 central test snippets (rows saved before they carried it)
MAJORITY = 0.568


def plot(rows: list[dict], path: Path) -> None:
    """Global and personalised accuracy per strategy, one panel per (split, ranks), with the majority class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["split"], r["ranks"]) for r in rows})
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4.5), squeeze=False)
    for ax, (split, ranks) in zip(axes[0], groups):
        sel = [r for r in rows if r["split"] == split and r["ranks"] == ranks]
        xs = range(len(sel))
        ax.bar([x - 0.2 for x in xs], [r["accuracy"] for r in sel], 0.4, label="global (central test)")
        ax.bar([x + 0.2 for x in xs], [r["personal_mean"] or 0 for r in sel], 0.4, label="personalised (clients)")
        ax.set_xticks(list(xs), [r["strategy"] for r in sel], rotation=60, ha="right")
        ax.set_ylim(0.4, 1.0)
        majority = next((r["majority"] for r in sel if r.get("majority")), MAJORITY)
        ax.axhline(majority, ls="--", c="grey", lw=1, label=f"majority class ({majority:.3f})")
        ax.set_title(f"{split}, LoRA ranks {ranks}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: Path) -> None:
    saved = latest(out / "strategies.jsonl", lambda r: (r["split"], r["ranks"], r["strategy"]))
    order = {n: i for i, n in enumerate(STRATEGIES)}
    rows = sorted(saved.values(), key=lambda r: (r["split"] != "iid", r["ranks"] != "8", order[r["strategy"]]))
    print(table(rows))
    plot(rows, out / "strategies.png")
    print(f"\nplot: {out / 'strategies.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated strategy names")
    parser.add_argument("--splits", default="iid,dir0.1", help=f"comma-separated, from {list(SPLITS)}")
    parser.add_argument("--ranks", choices=["uniform", "mixed", "both"], default="both")
    parser.add_argument("--out", default="runs/benchmarks", help="folder for runs and strategies.jsonl")
    parser.add_argument("--report", action="store_true", help="only print the table and plot of saved results")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run, e.g. threads=1")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # (the report's plot goes there too)
    if args.report:
        report(out)
        tradeoffs("strategies", out)
        return
    names = args.only.split(",") if args.only else list(STRATEGIES)
    splits = args.splits.split(",")
    unknown = (set(names) - set(STRATEGIES)) | (set(splits) - set(SPLITS))
    if unknown:
        sys.exit(f"unknown name(s) {sorted(unknown)}; strategies {list(STRATEGIES)}, splits {list(SPLITS)}")
    out.mkdir(parents=True, exist_ok=True)
    for name, split, ranks, overrides in jobs(names, splits):
        if args.ranks != "both" and (ranks == "8") != (args.ranks == "uniform"):
            continue
        started = time.perf_counter()
        run_name = f"strategies-{name}-{split}-r{ranks.replace('/', '_')}"
        summary = fedpeft.run(
            QUICKSTART,
            [
                *WORKLOAD,
                *overrides,
                *args.overrides,
                f"name={run_name}",
                f"output.dir={out}",
                "output.overwrite=true",
                "output.plot=false",
            ],
            progress=False,
        )
        with open(out / "strategies.jsonl", "a") as fh:
            fh.write(json.dumps(row(name, split, ranks, summary)) + "\n")
        print(
            f"[{name} {split} ranks {ranks}] acc {summary['final']['accuracy']:.3f} in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    report(out)
    tradeoffs("strategies", out)
    reproduce("strategies.py")


if __name__ == "__main__":
    main()
