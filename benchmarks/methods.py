"""Every PEFT method on the quickstart workload: same data, split, clients, rounds and seed.

Each method runs as a full fedpeft job (configs/quickstart.yaml with peft.method and a learning rate typical
for that family; nothing else changes). The table gives the family, trainable parameters, uplink bytes per
client per round (the real encoded payload), final accuracy / macro-F1 on the 1,000 held-out snippets and
wall time. Results are appended to runs/benchmarks/methods.jsonl as each method finishes.

``--task digits`` runs the same methods on configs/digits.yaml instead (those a CNN refuses, such as prompt tuning,
are reported and skipped): MobileNetV2
on scikit-learn's 8x8 digits, 10 labels, 10 clients with Dirichlet 0.5 label skew, 10 rounds; its results go to
methods_digits.jsonl. Sentiment's two labels let most methods tie; ten labels and little data per client do not.

Run: .venv/bin/python benchmarks/methods.py [--task digits] [--only lora,full] [extra overrides, e.g. threads=1]
     .venv/bin/python benchmarks/methods.py [--task digits] --report   # table and methods[_digits].png
"""

from __future__ import annotations

from pathlib import Path

from harness import CONFIG_DIR, chosen, latest, parser, reproduce, run_and_append, tradeoffs

from fedpeft.errors import FedPeftError

# name -> overrides on top of the quickstart config (LoRA keeps the quickstart's own settings)
METHODS: dict[str, list[str]] = {
    "lora": [],
    "dora": ["peft.use_dora=true"],
    "vera": ["peft.method=vera", "peft.r=256", "clients.lr=5e-3"],
    "ia3": ["peft.method=ia3", "clients.lr=5e-3"],
    "houlsby": ["peft.method=houlsby", "peft.reduction_factor=16", "clients.lr=1e-3"],
    "pfeiffer": ["peft.method=pfeiffer", "peft.reduction_factor=16", "clients.lr=1e-3"],
    "houlsby(lr=5e-3)": ["peft.method=houlsby", "peft.reduction_factor=16", "clients.lr=5e-3"],
    "pfeiffer(lr=5e-3)": ["peft.method=pfeiffer", "peft.reduction_factor=16", "clients.lr=5e-3"],
    "prompt": ["peft.method=prompt", "peft.num_virtual_tokens=20", "clients.lr=3e-2"],
    "prefix": ["peft.method=prefix", "peft.num_virtual_tokens=20", "clients.lr=1e-2"],
    "bitfit": ["peft.method=bitfit", "clients.lr=5e-3"],
    "layernorm": ["peft.method=layernorm", "clients.lr=5e-3"],
    "head": ["peft.method=head", "clients.lr=5e-3"],
    "top_layers(k=2)": ["peft.method=top_layers", "peft.k=2", "clients.lr=2e-4"],
    "sparse-magnitude": ["peft.method=sparse", "peft.density=0.01", "peft.selection=magnitude", "clients.lr=5e-4"],
    "sparse-random": ["peft.method=sparse", "peft.density=0.01", "peft.selection=random", "clients.lr=5e-4"],
    "sparse-fisher": ["peft.method=sparse", "peft.density=0.01", "peft.selection=fisher", "clients.lr=5e-4"],
    "sparse-magnitude(lr=5e-3)": [
        "peft.method=sparse",
        "peft.density=0.01",
        "peft.selection=magnitude",
        "clients.lr=5e-3",
    ],
    "sparse-fisher(lr=5e-3)": ["peft.method=sparse", "peft.density=0.01", "peft.selection=fisher", "clients.lr=5e-3"],
    "loha": ["peft.method=loha", "peft.options.r=8", "clients.lr=1e-3"],
    "loha(lr=5e-3)": ["peft.method=loha", "peft.options.r=8", "clients.lr=5e-3"],
    "lokr(lr=5e-3)": ["peft.method=lokr", "peft.options.r=8", "clients.lr=5e-3"],
    "hra(lr=5e-3)": ["peft.method=hra", "clients.lr=5e-3"],
    "lokr": ["peft.method=lokr", "peft.options.r=8", "clients.lr=1e-3"],
    "oft": ["peft.method=oft", "clients.lr=1e-3"],
    "hra": ["peft.method=hra", "clients.lr=1e-3"],
    "fourierft": ["peft.method=fourierft", "clients.lr=5e-3"],
    "p_tuning": ["peft.method=p_tuning", "clients.lr=1e-2"],
    "full": ["peft.method=full", "clients.lr=1e-4"],
}


# task: (config, results file, what the plot's title says)
TASKS: dict[str, tuple[str, str, str]] = {
    "sentiment": ("quickstart.yaml", "methods.jsonl", "the quickstart workload\n(MiniLM, Rotten Tomatoes by movie)"),
    "digits": ("digits.yaml", "methods_digits.jsonl", "digits\n(MobileNetV2, 8x8 digits, 10 clients, Dirichlet 0.5)"),
}


def lr_of(overrides: list[str]) -> str:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("clients.lr=")), "1e-3")


def row(name: str, s: dict) -> dict:
    led = s["ledger"]
    return {
        "method": name,
        "family": s["model"]["family"],
        "trainable_params": led["trainable_params"],
        "uplink_bytes_per_client_round": led["bytes_up"] / max(s["updates_accepted"], 1),
        "accuracy": s["final"]["accuracy"],
        "macro_f1": s["final"]["macro_f1"],
        "wall_seconds": s["wall_seconds"],
    }


def table(rows: list[dict], lrs: dict[str, str]) -> str:
    lines = [
        "| method | family | lr | trainable params | uplink / client / round | accuracy | macro-F1 | wall time |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        up = r["uplink_bytes_per_client_round"]
        size = f"{up / 1e6:.2f} MB" if up >= 1e5 else f"{up / 1e3:.1f} kB"
        lines.append(
            f"| {r['method']} | {r['family']} | {lrs.get(r['method'], '')} | {r['trainable_params']:,} | {size} | "
            f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['wall_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str = TASKS["sentiment"][2]) -> None:
    """Left: accuracy against uplink bytes per client update (log scale), each method a numbered point (the
    numbers keep dense clusters readable). Right: the methods by accuracy, with their numbers and uplink."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"additive": "tab:blue", "selective": "tab:green", "reparameterised": "tab:orange", "baseline": "k"}
    ranked = sorted(rows, key=lambda r: r["accuracy"])
    number = {r["method"]: i + 1 for i, r in enumerate(sorted(rows, key=lambda r: -r["accuracy"]))}
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(13, max(5, 0.28 * len(rows) + 1)), width_ratios=[3, 2])
    for r in rows:
        x = r["uplink_bytes_per_client_round"] / 1e6
        colour = colours.get(r["family"], "grey")
        ax.scatter(x, r["accuracy"], color=colour, s=120, alpha=0.35)
        ax.annotate(str(number[r["method"]]), (x, r["accuracy"]), ha="center", va="center", fontsize=7)
    for family, colour in colours.items():
        ax.scatter([], [], color=colour, label=family)
    ax.set_xscale("log")
    ax.set_xlabel("uplink per client update (MB, log scale)")
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"PEFT methods on {title}", fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    ys = range(len(ranked))
    bars.barh(list(ys), [r["accuracy"] for r in ranked], color=[colours.get(r["family"], "grey") for r in ranked])
    labels = [
        f"{number[r['method']]}. {r['method']} ({r['uplink_bytes_per_client_round'] / 1e6:.2g} MB)" for r in ranked
    ]
    bars.set_yticks(list(ys), labels, fontsize=7)
    low = min(r["accuracy"] for r in rows)
    bars.set_xlim(max(0.0, low - 0.05), 1.0 if low > 0.9 else max(r["accuracy"] for r in rows) + 0.02)
    bars.set_xlabel("final test accuracy")
    bars.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(out: Path, task: str = "sentiment") -> None:
    """Table and plot from every result recorded in the task's results file (the last one per method)."""
    _, results, title = TASKS[task]
    saved = latest(out / results, lambda r: r["method"])
    rows = [saved[n] for n in METHODS if n in saved]
    print(table(rows, {str(n): lr_of(METHODS[str(n)]) for n in saved}))
    png = out / results.replace(".jsonl", ".png")
    plot(rows, png, title)
    print(f"\nplot: {png}")


def main() -> None:
    p = parser(__doc__ or "", "methods.jsonl", "method")
    p.add_argument("--task", default="sentiment", choices=list(TASKS), help="the workload (default sentiment)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # (the report's plot goes there too)
    config, results, _ = TASKS[args.task]
    if not args.report:
        for name in chosen(args.only, list(METHODS)):
            overrides = [*METHODS[name], *args.overrides]
            try:
                run_and_append(name, overrides, out, results, f"methods-{args.task}-", row, CONFIG_DIR / config)
            except FedPeftError as e:  # a method this model refuses: say so and go on with the others
                print(f"[{name}] refused: {e}", flush=True)
    report(out, args.task)
    tradeoffs(results.removesuffix(".jsonl"), out)
    reproduce("methods.py")


if __name__ == "__main__":
    main()
