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

from pathlib import Path

from harness import chosen, latest, parser, reproduce, run_and_append

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
    saved = latest(out / "privacy.jsonl", lambda r: r["config"])
    print("| config | epsilon | noise multiplier | final clip | accuracy | test loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in CONFIGS:
        r = saved.get(name)
        if r and "eps=" in name:
            eps = "inf" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
            z = "" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}"
            clip = "" if r["clip"] is None else f"{r['clip']:.3g}"
            print(f"| {name} | {eps} | {z} | {clip} | {r['accuracy']:.3f} | {r['loss']:.4f} |")
    print("\n| attack / aggregator | attackers | accuracy | test loss |")
    print("|---|---:|---:|---:|")
    for name in CONFIGS:
        r = saved.get(name)
        if r and " / " in name:
            print(f"| {name} | {r['attackers']} | {r['accuracy']:.3f} | {r['loss']:.4f} |")


def main() -> None:
    args = parser(__doc__, "privacy.jsonl").parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for name in chosen(args.only, list(CONFIGS)):
            run_and_append(name, [*WORKLOAD, *CONFIGS[name], *args.overrides], out, "privacy.jsonl", "privacy-", row)
    report(out)
    reproduce("privacy.py")


if __name__ == "__main__":
    main()
