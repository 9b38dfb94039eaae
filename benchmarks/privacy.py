"""Accuracy against epsilon for client-level DP (LoRA, FFA-LoRA) and DP-SGD, and accuracy under attacks with
and without robust aggregation.

The workload is configs/quickstart.yaml (MiniLM, Rotten Tomatoes split by movie: 423 clients) cut to what
client-level DP can carry with 423 clients: LoRA r=1 on query/value of the top two blocks plus the head (3,842
trainable parameters; the noise on the mean grows with the square root of that count), the frozen lower
blocks cached, 50 clients per round (one local epoch, lr 0.03), 10 rounds, seed 0. DP rows are central
DP-FedAvg with adaptive clipping (start 0.5, median) and the noise calibrated to each target epsilon at
delta = 1/423^1.1 over the 10 rounds (Opacus RDP). DP-SGD rows calibrate each client's noise so that its own
epsilon (delta 1e-5) stays under the target. Attack rows make 10% of the clients malicious.
Results are appended to runs/benchmarks/privacy.jsonl as each row finishes.

--costs measures what the machinery costs on the unchanged quickstart job (LoRA r=8 on every block, 10
clients per round, 3 rounds): local training and aggregation time, uplink bytes and the checkpoint's size,
plain against secure aggregation and DP-SGD (Opacus hooks, and one backward per example with IA3).

Run: .venv/bin/python benchmarks/privacy.py [--only "lora eps=8,ffa_lora eps=8"] [overrides, e.g. threads=1]
     .venv/bin/python benchmarks/privacy.py --report      # the tables and runs/benchmarks/privacy.png
     .venv/bin/python benchmarks/privacy.py --costs threads=1
"""

from __future__ import annotations

from pathlib import Path

from harness import chosen, latest, parser, reproduce, run_and_append

WORKLOAD = [
    "clients.per_round=50",
    "clients.local_epochs=1",
    "clients.lr=0.03",
    "peft.r=1",
    "peft.alpha=2",
    "peft.target_modules=[query,value]",
    "peft.layers=[4,5]",
    "model.cache_frozen_prefix=true",
    "eval.every=0",
    "output.save_adapter=false",
    "output.plot=false",
]
DP = ["privacy.client_dp=central", "privacy.adaptive_clip=true", "privacy.clip=0.5"]
EPSILONS = (8, 4, 2, 1)
SGD_EPSILONS = (8, 32, 128)  # per-client sample-level epsilons: clients hold about 27 examples each
CONFIGS: dict[str, list[str]] = {}
for method in ("lora", "ffa_lora"):
    strategy = [f"strategy.name={method}"] if method != "lora" else []
    CONFIGS[f"{method} eps=inf"] = strategy
    for eps in EPSILONS:
        CONFIGS[f"{method} eps={eps}"] = [*strategy, *DP, f"privacy.target_epsilon={eps}"]
CONFIGS["lora clip only"] = [*DP, "privacy.noise_multiplier=0"]  # DP-FedAvg's clipping without its noise
for eps in SGD_EPSILONS:
    CONFIGS[f"dp_sgd eps={eps}"] = ["privacy.dp_sgd.enabled=true", f"privacy.dp_sgd.target_epsilon={eps}"]
CONFIGS["dp_sgd eps=8 (sgd)"] = [
    "privacy.dp_sgd.enabled=true",
    "privacy.dp_sgd.target_epsilon=8",
    "clients.optimizer=sgd",
    "clients.lr=0.5",
]
CONFIGS["no attack / mean"] = []
CONFIGS["no attack / median"] = ["robustness.aggregator=median"]  # what a robust rule costs with no attack
CONFIGS["no attack / multi_krum"] = ["robustness.aggregator=multi_krum", "robustness.byzantine=8"]
for attack in ("sign_flip", "scale", "noise"):
    hit = [f"attack.kind={attack}", "attack.fraction=0.1", "attack.scale=5", "attack.noise_std=0.05"]
    CONFIGS[f"{attack} / mean"] = hit
    CONFIGS[f"{attack} / median"] = [*hit, "robustness.aggregator=median"]
    CONFIGS[f"{attack} / trimmed_mean"] = [*hit, "robustness.aggregator=trimmed_mean", "robustness.trim_fraction=0.15"]
    CONFIGS[f"{attack} / multi_krum"] = [*hit, "robustness.aggregator=multi_krum", "robustness.byzantine=8"]


def row(name: str, s: dict) -> dict:
    dp, sgd = s.get("privacy") or {}, s.get("dp_sgd") or {}
    return {
        "config": name,
        "accuracy": s["final"]["accuracy"],
        "macro_f1": s["final"]["macro_f1"],
        "loss": s["final"]["loss"],
        "epsilon": dp.get("epsilon", sgd.get("max_client_epsilon")),
        "noise_multiplier": dp.get("noise_multiplier"),
        "clip": dp.get("clip"),
        "median_client_epsilon": sgd.get("median_client_epsilon"),
        "dp_sgd_path": sgd.get("per_example_gradients"),
        "attackers": (s.get("attack") or {}).get("attackers"),
        "rejected": s["ledger"]["rejected_updates"],
        "majority": s["data"]["majority_baseline"],
        "wall_seconds": s["wall_seconds"],
    }


COSTS: dict[str, list[str]] = {
    "plain": [],
    "secure aggregation": ["privacy.secure_aggregation.enabled=true"],
    "DP-SGD (Opacus hooks)": ["privacy.dp_sgd.enabled=true", "privacy.dp_sgd.noise_multiplier=1.0"],
    "IA3": ["peft.method=ia3", "clients.lr=5e-3"],
    "IA3 + DP-SGD (per example)": [
        "peft.method=ia3",
        "clients.lr=5e-3",
        "privacy.dp_sgd.enabled=true",
        "privacy.dp_sgd.noise_multiplier=1.0",
    ],
}


def cost_row(name: str, s: dict) -> dict:
    folder = Path(s["run_dir"]) / "checkpoint"
    seconds = s["ledger"]["seconds"]
    return {
        "config": name,
        "train_seconds": seconds["train"],
        "aggregate_seconds": seconds["aggregate"],
        "bytes_up": s["ledger"]["bytes_up"],
        "updates": s["updates_accepted"],
        "checkpoint_bytes": sum(p.stat().st_size for p in folder.glob("*") if p.is_file()),
        "accuracy": s["final"]["accuracy"],
    }


def cost_report(out: Path) -> None:
    saved = latest(out / "privacy_costs.jsonl", lambda r: r["config"])
    base = {"plain": saved.get("plain"), "IA3": saved.get("IA3")}
    print("| config | local training | x plain | aggregation | uplink per update | checkpoint after 3 rounds |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in COSTS:
        r = saved.get(name)
        if not r:
            continue
        ref = base["IA3" if name.startswith("IA3") else "plain"]
        ratio = f"{r['train_seconds'] / ref['train_seconds']:.2f}" if ref else ""
        per_update = f"{r['bytes_up'] / r['updates'] / 1e3:.1f} kB" if r["updates"] else "no update accepted"
        print(
            f"| {name} | {r['train_seconds']:.1f} s | {ratio} | {r['aggregate_seconds']:.2f} s | "
            f"{per_update} | {r['checkpoint_bytes'] / 1e6:.2f} MB |"
        )


def plot(saved: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, label in (
        ("lora", "LoRA, client-level DP"),
        ("ffa_lora", "FFA-LoRA, client-level DP"),
        ("dp_sgd", "LoRA, DP-SGD (per-client target epsilon)"),
    ):
        pts = [
            (eps, saved[f"{family} eps={eps}"]["accuracy"])
            for eps in (SGD_EPSILONS if family == "dp_sgd" else EPSILONS)
            if f"{family} eps={eps}" in saved
        ]
        if pts:
            ax.plot(*zip(*sorted(pts)), marker="o", label=label)
        base = saved.get(f"{family} eps=inf")
        if base:
            ax.axhline(
                base["accuracy"],
                ls="--",
                lw=1,
                color=ax.lines[-1].get_color() if pts else None,
                label=f"{label.split(',')[0]}, no DP",
            )
    any_row = next(iter(saved.values()), None)
    if any_row and any_row.get("majority"):
        ax.axhline(any_row["majority"], color="grey", ls=":", lw=1, label="majority class")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epsilon (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Rotten Tomatoes, 423 clients by movie, 10 rounds of 50")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(out: Path) -> None:
    saved = latest(out / "privacy.jsonl", lambda r: r["config"])
    print("| config | epsilon | noise multiplier | final clip | accuracy | test loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in CONFIGS:
        r = saved.get(name)
        if r and ("eps=" in name or name == "lora clip only"):
            eps = "inf" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
            if r.get("median_client_epsilon") is not None:
                eps += f" (median {r['median_client_epsilon']:.2f})"
            z = "" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}"
            clip = "" if r["clip"] is None else f"{r['clip']:.3g}"
            print(f"| {name} | {eps} | {z} | {clip} | {r['accuracy']:.3f} | {r['loss']:.4f} |")
    print("\n| attack / aggregator | attackers | accuracy | test loss |")
    print("|---|---:|---:|---:|")
    for name in CONFIGS:
        r = saved.get(name)
        if r and " / " in name:
            print(f"| {name} | {r['attackers'] or 0} | {r['accuracy']:.3f} | {r['loss']:.4f} |")
    if saved:
        plot(saved, out / "privacy.png")
        print(f"\nplot: {out / 'privacy.png'}")


def main() -> None:
    p = parser(__doc__, "privacy.jsonl")
    p.add_argument("--costs", action="store_true", help="time and bytes of secure aggregation and DP-SGD")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.costs:
        if not args.report:
            for name in chosen(args.only, list(COSTS)):
                run_and_append(
                    name,
                    ["rounds=3", "eval.every=0", "output.save_adapter=false", *COSTS[name], *args.overrides],
                    out,
                    "privacy_costs.jsonl",
                    "privacy-costs-",
                    cost_row,
                )
        cost_report(out)
        reproduce("privacy.py")
        return
    if not args.report:
        for name in chosen(args.only, list(CONFIGS)):
            run_and_append(name, [*WORKLOAD, *CONFIGS[name], *args.overrides], out, "privacy.jsonl", "privacy-", row)
    report(out)
    reproduce("privacy.py")


if __name__ == "__main__":
    main()
