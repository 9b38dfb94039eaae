"""Private training that learns, and accuracy under attacks with and without robust aggregation.

Client-level DP rows run configs/private_clients.yaml (central DP-FedAvg: 2,000 clients, Poisson-sampled at
q = 0.1, 30 rounds, LoRA r=1 on two blocks plus the head, adaptive clip) at several target epsilons (delta
1e-5, add/remove one client), beside the same run without DP, with clipping only, and with fixed-size cohorts
(replace-one adjacency, which costs more noise for the same epsilon). DP-SGD rows run
configs/private_silos.yaml (a linear probe over 5 silos of about 2,300 reviews, Poisson batches of 256, an
epoch a round, 10 rounds) with each silo's epsilon calibrated to the target (delta 1e-5, add/remove one
example), beside the same run without DP. The `(seed 1)` rows show the seed-to-seed spread. Attack rows use
configs/quickstart.yaml (423 clients by movie) cut to LoRA r=1 on the top two blocks, 50 clients a round,
10 rounds, with 10% of the clients malicious.
Results are appended to runs/benchmarks/privacy.jsonl as each row finishes.

--costs measures what the machinery costs on the unchanged quickstart job (LoRA r=8 on every block, 10
clients per round, 3 rounds): local training and aggregation time, uplink bytes and the checkpoint's size,
plain against secure aggregation and DP-SGD (Opacus hooks, and one backward per example with IA3).

Run: .venv/bin/python benchmarks/privacy.py [--only "clients eps=8,clients no DP"] [overrides, e.g. threads=1]
     .venv/bin/python benchmarks/privacy.py --report      # the tables and runs/benchmarks/privacy.png
     .venv/bin/python benchmarks/privacy.py --costs threads=1
"""

from __future__ import annotations

import re
from pathlib import Path

from harness import QUICKSTART, chosen, latest, parser, reproduce, run_and_append, tradeoffs

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
CLIENTS, SILOS = CONFIGS_DIR / "private_clients.yaml", CONFIGS_DIR / "private_silos.yaml"
ATTACK_WORKLOAD = [
    "clients.per_round=50",
    "clients.local_epochs=1",
    "clients.lr=0.03",
    "peft.r=1",
    "peft.alpha=2",
    "peft.target_modules=[query,value]",
    "peft.layers=[4,5]",
    "model.cache_frozen_prefix=true",
    "eval.every=0",
]
QUIET = ["output.save_adapter=false", "output.plot=false"]
EPSILONS = (8, 4, 2, 1)  # client-level, as the Poisson-sampling accountant reports it
SGD_EPSILONS = (8, 4, 2)  # per silo, sample-level
CONFIGS: dict[str, tuple[Path, list[str]]] = {
    "clients no DP": (CLIENTS, ["privacy.client_dp=off"]),
    "clients clip only": (CLIENTS, ["privacy.target_epsilon=null", "privacy.noise_multiplier=0"]),
    **{f"clients eps={e}": (CLIENTS, [f"privacy.target_epsilon={e}"]) for e in EPSILONS},
    "clients eps=8 fixed cohorts": (CLIENTS, ["privacy.sampling=fixed"]),
    "clients no DP (seed 1)": (CLIENTS, ["privacy.client_dp=off", "seed=1"]),  # the seed-to-seed spread
    "clients eps=8 (seed 1)": (CLIENTS, ["seed=1"]),
    "silos no DP": (SILOS, ["privacy.dp_sgd.enabled=false"]),
    **{f"silos eps={e}": (SILOS, [f"privacy.dp_sgd.target_epsilon={e}"]) for e in SGD_EPSILONS},
}
CONFIGS["no attack / mean"] = (QUICKSTART, ATTACK_WORKLOAD)
CONFIGS["no attack / median"] = (QUICKSTART, [*ATTACK_WORKLOAD, "robustness.aggregator=median"])
CONFIGS["no attack / multi_krum"] = (
    QUICKSTART,
    [*ATTACK_WORKLOAD, "robustness.aggregator=multi_krum", "robustness.byzantine=8"],
)
for attack in ("sign_flip", "scale", "noise"):
    hit = [*ATTACK_WORKLOAD, f"attack.kind={attack}", "attack.fraction=0.1", "attack.scale=5", "attack.noise_std=0.05"]
    CONFIGS[f"{attack} / mean"] = (QUICKSTART, hit)
    CONFIGS[f"{attack} / median"] = (QUICKSTART, [*hit, "robustness.aggregator=median"])
    CONFIGS[f"{attack} / trimmed_mean"] = (
        QUICKSTART,
        [*hit, "robustness.aggregator=trimmed_mean", "robustness.trim_fraction=0.15"],
    )
    CONFIGS[f"{attack} / multi_krum"] = (
        QUICKSTART,
        [*hit, "robustness.aggregator=multi_krum", "robustness.byzantine=8"],
    )


def row(name: str, s: dict) -> dict:
    dp, sgd = s.get("privacy") or {}, s.get("dp_sgd") or {}
    return {
        "config": name,
        "accuracy": s["final"]["accuracy"],
        "macro_f1": s["final"]["macro_f1"],
        "loss": s["final"]["loss"],
        "epsilon": dp.get("epsilon", sgd.get("max_client_epsilon")),
        "delta": dp.get("delta", sgd.get("delta")),
        "sampling": dp.get("sampling", "Poisson batches" if sgd else None),
        "adjacency": dp.get("adjacency", "add/remove one example" if sgd else None),
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


FAMILIES = (  # (row prefix, epsilons, label)
    ("clients", EPSILONS, "client-level DP: LoRA r=1, 2,000 clients, Poisson q=0.1, 30 rounds"),
    ("silos", SGD_EPSILONS, "DP-SGD: linear probe, 5 silos, batches of 256, 10 rounds (per-silo epsilon)"),
)


def plot(saved: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for family, epsilons, label in FAMILIES:
        pts = [(saved[k]["epsilon"], saved[k]["accuracy"]) for e in epsilons if (k := f"{family} eps={e}") in saved]
        if not pts:
            continue
        (line,) = ax.plot(*zip(*sorted(pts)), marker="o", label=label)
        base = saved.get(f"{family} no DP")
        if base:
            ax.axhline(base["accuracy"], ls="--", lw=1, color=line.get_color(), label=f"{family}: same run, no DP")
        other = [saved[k] for k in (f"{family} eps=8 (seed 1)", f"{family} no DP (seed 1)") if k in saved]
        for r in other:  # the seed-to-seed spread: the same runs with seed 1 (no DP drawn at the right edge)
            eps = r["epsilon"] if r["epsilon"] not in (None, float("inf")) else max(epsilons) * 1.6
            ax.plot([eps], [r["accuracy"]], "x", color=line.get_color(), label=f"{family}: seed 1")
    any_row = next(iter(saved.values()), None)
    if any_row and any_row.get("majority"):
        ax.axhline(any_row["majority"], color="grey", ls=":", lw=1, label="majority class")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epsilon reported (delta 1e-5; log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Rotten Tomatoes on MiniLM: accuracy against privacy")
    ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def short(sampling: str) -> str:
    """'Poisson q=0.1' for the summary's sentence about client sampling."""
    q = re.search(r"q = ([0-9.e-]+)", sampling)
    if sampling.startswith("Poisson,") and q:
        return f"Poisson clients, q={q.group(1)}"
    return sampling.split(",")[0]


def report(out: Path) -> None:
    saved = latest(out / "privacy.jsonl", lambda r: r["config"])
    print("| config | epsilon | delta | sampling / adjacency | noise multiplier | final clip | accuracy | vs no DP |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name in CONFIGS:
        r = saved.get(name)
        if not r or " / " in name:
            continue
        seeded = " (seed 1)" if name.endswith(" (seed 1)") else ""
        base = saved.get(name.split(" ")[0] + " no DP" + seeded)
        eps = "inf" if r["epsilon"] is None or r["epsilon"] == float("inf") else f"{r['epsilon']:.2f}"
        if r.get("median_client_epsilon") is not None:
            eps += f" (median {r['median_client_epsilon']:.2f})"
        delta = f"{r['delta']:.0e}" if r.get("delta") else ""
        how = f"{short(r.get('sampling') or '')}; {r['adjacency']}" if r.get("adjacency") else ""
        z = "" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}"
        clip = "" if r["clip"] is None else f"{r['clip']:.3g}"
        gap = f"{100 * (r['accuracy'] - base['accuracy']):+.1f} pts" if base and base is not r else ""
        print(f"| {name} | {eps} | {delta} | {how} | {z} | {clip} | {r['accuracy']:.3f} | {gap} |")
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
            config, overrides = CONFIGS[name]
            run_and_append(
                name, [*overrides, *QUIET, *args.overrides], out, "privacy.jsonl", "privacy-", row, config=config
            )
    report(out)
    tradeoffs("privacy", out)
    reproduce("privacy.py")


if __name__ == "__main__":
    main()
