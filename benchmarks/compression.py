"""Accuracy against uplink bytes on the quickstart workload: no compression, each transform, and combinations.

Every row is a full fedpeft job on configs/quickstart.yaml (MiniLM + LoRA r=8 on Rotten Tomatoes split by
movie, 10 clients per round, 10 rounds, seed 0) with only ``compression`` changed. Bytes are the real
payloads summed over the run; "x full FT" divides the uplink bytes of full fine-tuning with FedAvg (one
real encoded payload of MiniLM's 22.7M parameters, times the same number of client updates) by the row's.
Results are appended to runs/benchmarks/compression.jsonl as each row finishes.

``--task digits`` runs the same pipelines on configs/digits.yaml (MobileNetV2 + LoRA on scikit-learn's 8x8
digits, 10 labels, 10 clients with Dirichlet 0.5 label skew, 5 per round, 10 rounds) into
compression_digits.jsonl: ten labels and little data per client, where what an update loses can show.

``--caching`` instead times frozen-prefix activation caching: top-k layers (k=2) with and without
``model.cache_frozen_prefix``, in the same process, one after the other.

Run: .venv/bin/python benchmarks/compression.py [--task digits] [--only topk+int8,int4] [overrides, e.g. threads=1]
     .venv/bin/python benchmarks/compression.py --caching threads=1
     .venv/bin/python benchmarks/compression.py [--task digits] --report  # table and compression[_digits].png
"""

from __future__ import annotations

import json
from pathlib import Path

from harness import CONFIG_DIR, QUICKSTART, chosen, latest, parser, reproduce, run_and_append, tradeoffs

import fedpeft

T = {
    "fp16": "{name: fp16}",
    "int8": "{name: int8}",
    "int4": "{name: int4}",
    "int8/t": "{name: int8, block: null}",
    "int4/d": "{name: int4, rounding: dithered}",
    "int4/128": "{name: int4, block: 128}",
    "int2/128": "{name: int2, block: 128}",
    "int2/128/d": "{name: int2, block: 128, rounding: dithered}",
    "top10": "{name: topk, density: 0.1}",
    "rand10": "{name: randk, density: 0.1}",
    "rand10/r": "{name: randk, density: 0.1, rescale: true}",
    "prune50": "{name: prune, amount: 0.5}",
    "rank4": "{name: lora_rank, keep: 4}",
}
NO_EF = "compression.error_feedback=false"


def uplink(*names: str) -> list[str]:
    return [f"compression.uplink=[{', '.join(T[n] for n in names)}]"]


# Error feedback is on by default with topk / randk; with ~400 clients and 10 sampled per round most clients
# take part once, so a residual is rarely used again (rows with and without it show that).
CONFIGS: dict[str, list[str]] = {
    "none": [],
    "fp16": uplink("fp16"),
    "int8": uplink("int8"),
    "int8 per tensor": uplink("int8/t"),
    "int4": uplink("int4"),
    "int4 dithered": uplink("int4/d"),
    "int2 (block 128)": uplink("int2/128"),
    "int2 dithered (block 128)": uplink("int2/128/d"),
    "topk 10%": uplink("top10"),
    "topk 10% no EF": [*uplink("top10"), NO_EF],
    "randk 10%": uplink("rand10"),
    "randk 10% rescaled (no EF)": [*uplink("rand10/r"), NO_EF],
    "prune 50%": uplink("prune50"),
    "lora_rank 4": uplink("rank4"),
    "topk 10% + int8": uplink("top10", "int8"),
    "lora_rank 4 + int4 (EF)": [*uplink("rank4", "int4/128"), "compression.error_feedback=true"],
    "int2 dithered + downlink int8": [*uplink("int2/128/d"), "compression.downlink=[{name: int8}]"],
    "randk 10% rescaled + int8 (no EF)": [*uplink("rand10/r", "int8"), NO_EF],
    "randk 10% rescaled + int4 (no EF)": [*uplink("rand10/r", "int4"), NO_EF],
}


# task: (config, results file, what the plot's title says)
TASKS: dict[str, tuple[Path, str, str]] = {
    "sentiment": (QUICKSTART, "compression.jsonl", "the quickstart workload (MiniLM + LoRA r=8, 100 client updates)"),
    "digits": (
        CONFIG_DIR / "digits.yaml",
        "compression_digits.jsonl",
        "digits (MobileNetV2 + LoRA r=8, 10 labels, Dirichlet 0.5, 50 client updates)",
    ),
}


def full_ft_update_bytes(config: Path = QUICKSTART) -> int:
    """The real payload of one full fine-tuning update of the config's model (every parameter, float32)."""
    from fedpeft.build import build_setup
    from fedpeft.config import load_config
    from fedpeft.pipeline import codec

    setup = build_setup(load_config(config, ["peft.method=full"]))
    return len(codec.encode(setup.trainable.snapshot()))


def row(name: str, s: dict) -> dict:
    led, updates = s["ledger"], s["updates_accepted"] + s["ledger"]["rejected_updates"]
    return {
        "config": name,
        "uplink": s["compression"]["uplink"],
        "downlink": s["compression"]["downlink"],
        "error_feedback": s["compression"]["error_feedback"],
        "accuracy": s["final"]["accuracy"],
        "macro_f1": s["final"]["macro_f1"],
        "loss": s["final"]["loss"],
        "bytes_up": led["bytes_up"],
        "bytes_down": led["bytes_down"],
        "updates": updates,
        "train_seconds": led["seconds"]["train"],
        "wall_seconds": s["wall_seconds"],
    }


def table(rows: list[dict], full_update: int) -> str:
    base = next((r for r in rows if r["config"] == "none"), None)
    lines = [
        f"Full fine-tuning uplink: {full_update:,} bytes per client update (real payload).",
        "",
        "| config | uplink pipeline | accuracy | vs LoRA | test loss | uplink total | per update | x full FT "
        "| downlink total |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: -r["bytes_up"]):
        per = r["bytes_up"] / max(r["updates"], 1)
        gap = f"{100 * (r['accuracy'] - base['accuracy']):+.1f} pt" if base else ""
        ef = " (EF)" if r["error_feedback"] else ""
        ef += f"; downlink {r['downlink']}" if r["downlink"] != "none" else ""
        lines.append(
            f"| {r['config']} | {r['uplink']}{ef} | {r['accuracy']:.3f} | {gap} | {r['loss']:.4f} | "
            f"{r['bytes_up'] / 1e6:.2f} MB | {per / 1e3:.1f} kB | {full_update / per:,.0f}x | "
            f"{r['bytes_down'] / 1e6:.1f} MB |"
        )
    return "\n".join(lines)


def kind(r: dict) -> str:
    up = r["uplink"]
    if up == "none":
        return "uncompressed LoRA"
    if "topk" in up or "randk" in up or "prune" in up or "lora_rank" in up:
        return "sparsification / rank pruning (+ quantisation)"
    return "precision (cast, quantisation)"


def plot(rows: list[dict], full_update: int, path: Path, title: str = TASKS["sentiment"][2]) -> None:
    """Final accuracy against total uplink MB (log scale); points numbered, the numbers listed beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "uncompressed LoRA": "k",
        "precision (cast, quantisation)": "tab:blue",
        "sparsification / rank pruning (+ quantisation)": "tab:orange",
    }
    fig, ax = plt.subplots(figsize=(12, 6))
    legend = []
    for i, r in enumerate(sorted(rows, key=lambda r: -r["bytes_up"]), 1):
        x = r["bytes_up"] / 1e6
        ax.scatter(x, r["accuracy"], color=colours[kind(r)], s=28, zorder=3)
        ax.annotate(str(i), (x, r["accuracy"]), textcoords="offset points", xytext=(3, 3 + 7 * (i % 3)), fontsize=8)
        legend.append(f"{i:>2}  {r['config']}")
    base = next((r for r in rows if r["config"] == "none"), None)
    if base:
        full_mb = full_update * base["updates"] / 1e6
        ax.axvline(full_mb, color="grey", ls="--", lw=1)
        ax.text(full_mb, ax.get_ylim()[0], " full fine-tuning", fontsize=8, rotation=90, va="bottom", ha="right")
        ax.axvline(full_mb / 1000, color="tab:green", ls=":", lw=1)
        ax.text(full_mb / 1000, ax.get_ylim()[0], " 1000x less", fontsize=8, rotation=90, va="bottom", ha="right")
        ax.axhline(base["accuracy"] - 0.01, color="tab:green", ls=":", lw=1)
        ax.text(ax.get_xlim()[1], base["accuracy"] - 0.01, "LoRA - 1 pt ", fontsize=8, ha="right", va="bottom")
    for name, colour in colours.items():
        ax.scatter([], [], color=colour, label=name)
    ax.legend(loc="lower right", fontsize=8)
    ax.text(1.02, 1.0, "\n".join(legend), transform=ax.transAxes, fontsize=8, va="top", family="monospace")
    ax.set_xscale("log")
    ax.set_xlabel("total uplink over the run (MB, log scale)")
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"Update compression on {title}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def wire_headers() -> dict[str, int]:
    """Header bytes of one quickstart LoRA update (76 tensors) as plain and as packed safetensors."""
    import struct

    import torch

    from fedpeft.config import load_config
    from fedpeft.config.compression import CompressionConfig
    from fedpeft.methods.configured import apply_configured
    from fedpeft.model import TrainableState
    from fedpeft.model.load import load_model
    from fedpeft.pipeline.compression import UpdatePipeline

    model, _ = load_model("minilm", "sequence_classification", ["negative", "positive"], seed=0)
    model, _ = apply_configured(load_config(QUICKSTART), model, "sequence_classification", {})
    update = {n: torch.zeros_like(p) for n, p in TrainableState(model).params.items()}
    out = {}
    for label, uplink in (("plain", []), ("int2 dithered", [{"name": "int2", "block": 128, "rounding": "dithered"}])):
        pipe = UpdatePipeline.from_config(CompressionConfig.model_validate({"uplink": uplink}).uplink)
        payload, _ = pipe.encode(update)
        out[label] = 8 + struct.unpack("<Q", payload[:8])[0]
    return out


def report(out: Path, task: str = "sentiment") -> None:
    config, results, title = TASKS[task]
    saved = latest(out / results, lambda r: r["config"])
    rows = [saved[n] for n in CONFIGS if n in saved]
    full = full_ft_update_bytes(config)
    print(table(rows, full))
    if task == "sentiment":
        headers = wire_headers()
        print(
            "\nWire header of one LoRA update (76 tensors): "
            + ", ".join(f"{k} {v:,} bytes" for k, v in headers.items())
        )
    png = out / results.replace(".jsonl", ".png")
    plot(rows, full, png, title)
    print(f"\nplot: {png}")


def caching(out: Path, overrides: list[str]) -> None:
    """Wall time of local training for top-k layers with and without frozen-prefix caching."""
    results = {}
    for cache in ("false", "true"):
        s = fedpeft.run(
            QUICKSTART,
            [
                "peft.method=top_layers",
                "peft.k=2",
                "clients.lr=2e-4",
                f"model.cache_frozen_prefix={cache}",
                *overrides,
                f"name=caching-{cache}",
                f"output.dir={out}",
                "output.overwrite=true",
            ],
            progress=False,
        )
        results[cache] = s
        print(
            f"[cache={cache}] accuracy {s['final']['accuracy']:.3f}, local training "
            f"{s['ledger']['seconds']['train']:.1f} s, run {s['wall_seconds']:.1f} s, "
            f"{s['ledger']['flops'] / 1e12:.2f} TFLOPs (estimate)",
            flush=True,
        )
    a, b = results["false"], results["true"]
    ratio = a["ledger"]["seconds"]["train"] / b["ledger"]["seconds"]["train"]
    line = {
        "benchmark": "caching",
        "train_seconds_uncached": a["ledger"]["seconds"]["train"],
        "train_seconds_cached": b["ledger"]["seconds"]["train"],
        "speedup": ratio,
        "accuracy_uncached": a["final"]["accuracy"],
        "accuracy_cached": b["final"]["accuracy"],
        "flops_uncached": a["ledger"]["flops"],
        "flops_cached": b["ledger"]["flops"],
        "cache": b["model"]["prefix_cache"],
    }
    with open(out / "caching.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")
    print(f"local training: {ratio:.2f}x faster with the frozen-prefix cache (top_layers k=2, same run settings)")


def main() -> None:
    p = parser(__doc__, "compression.jsonl")
    p.add_argument("--task", default="sentiment", choices=list(TASKS), help="the workload (default sentiment)")
    p.add_argument("--caching", action="store_true", help="time frozen-prefix caching instead")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config, results, _ = TASKS[args.task]
    if args.report:
        report(out, args.task)
        tradeoffs(results.removesuffix(".jsonl"), out)
        return
    if args.caching:
        caching(out, args.overrides)
    else:
        for name in chosen(args.only, list(CONFIGS)):
            run_and_append(
                name,
                [*CONFIGS[name], *args.overrides, "output.save_adapter=false"],
                out,
                results,
                f"compression-{args.task}-",
                row,
                config,
            )
        report(out, args.task)
    tradeoffs(results.removesuffix(".jsonl"), out)
    reproduce("compression.py")


if __name__ == "__main__":
    main()
