"""The plain-words summary printed at the end of a run."""

from __future__ import annotations

from typing import Any


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def human_count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,.0f}"


def human_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 90 else f"{int(s // 60)} min {s % 60:.0f} s"


def summary_text(summary: dict[str, Any]) -> str:
    """Say what happened: data, model, quality before and after, cost, failures, where the files are."""
    parts = (_data_and_model, _quality, _server_and_clients, _cost, _privacy, _wire_and_outputs)
    return "\n".join(line for part in parts for line in part(summary))


def _data_and_model(summary: dict[str, Any]) -> list[str]:
    d, m, c = summary["data"], summary["model"], summary["ledger"]
    sizes = d["client_sizes"]
    lines = [
        f"fedpeft run '{summary['name']}' finished in {human_seconds(summary['wall_seconds'])}.",
        f"  Data:    {d['dataset']}: {d['train_examples']:,} training / {d['test_examples']:,} test examples, "
        f"{d['partition']} split over {d['num_clients']} clients (sizes {sizes['min']}-{sizes['max']}, "
        f"median {sizes['median']:g}); {summary['clients_per_round']} clients per round, "
        f"{summary['rounds']} rounds.",
        f"  Model:   {m['name']} + {m['method']} ({m['family']}): {human_count(c['trainable_params'])} trainable "
        f"of {human_count(c['total_params'])} parameters ({100 * c['trainable_fraction']:.2f}%).",
    ]
    setup = m.get("setup") or {}
    if setup.get("mask_selection") == "fisher":
        lines[-1] += (
            f" Mask agreed from the Fisher scores of {setup['clients']} clients "
            f"({setup['bytes_up_once'] / 1e6:.2f} MB up, once)."
        )
    if head := setup.get("head_init"):
        how = {"class_means": "class means (FedNCM)", "ridge": "ridge regression (Fed3R)"}[head["kind"]]
        lines[-1] += (
            f" Head set from the {how} of {head['clients']} clients' features "
            f"({head['bytes_up_once'] / 1e6:.2f} MB up, once)."
        )
    return lines


def _quality(summary: dict[str, Any]) -> list[str]:
    d, q, first = summary["data"], summary["final"], summary.get("initial") or {}
    lines: list[str] = []
    if "accuracy" in q:
        before = f"{first['accuracy']:.3f} -> " if "accuracy" in first else ""
        lines.append(
            f"  Quality: test accuracy {before}{q['accuracy']:.3f}, macro-F1 {q['macro_f1']:.3f}, loss "
            f"{q['loss']:.3f}; majority-class baseline {d['majority_baseline']:.3f}."
        )
    else:
        before = f"{first['perplexity']:.2f} -> " if "perplexity" in first else ""
        answers = ""
        if "rouge_l" in q:
            answers = (
                f"; greedy answers to {q.get('answered', 0):.0f} held-out prompts: ROUGE-L "
                f"{first.get('rouge_l', float('nan')):.3f} -> {q['rouge_l']:.3f}, exact match "
                f"{first.get('exact_match', float('nan')):.3f} -> {q['exact_match']:.3f}"
            )
        lines.append(
            f"  Quality: test perplexity {before}{q['perplexity']:.2f} (over {q['tokens']:.0f} target tokens){answers}."
        )
    samples = summary.get("samples")
    if samples and samples.get("after"):
        s0, b0 = samples["after"][0], (samples.get("before") or [{}])[0]
        lines.append(
            f"  Sample:  {s0['prompt']!r} -> before {b0.get('answer', '')!r}, after {s0['answer']!r} "
            f"(reference {s0['reference']!r}; more in summary.json)"
        )
    classes = summary.get("classes")
    if classes:
        recall = sorted(((r, n) for n, r in classes["recall"].items() if r == r), key=lambda x: x[0])
        shown = recall if len(recall) <= 4 else recall[:3]
        what = "per class" if len(recall) <= 4 else "lowest"
        lines.append(
            f"  Recall:  {what} "
            + ", ".join(f"{n} {r:.2f}" for r, n in shown)
            + ("" if len(recall) <= 4 else f"; highest {recall[-1][1]} {recall[-1][0]:.2f}")
            + " (confusion matrix in summary.json"
            + (", confusion.png)" if "confusion.png" in summary.get("outputs", []) else ")")
        )
    return lines


def _server_and_clients(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    strategy = summary.get("strategy") or {}
    if strategy.get("name", "fedavg") != "fedavg" or strategy.get("ranks"):
        ranks = strategy.get("ranks")
        tiers = f", clients' LoRA ranks {', '.join(f'{r} ({n})' for r, n in ranks.items())}" if ranks else ""
        lines.append(f"  Server:  strategy {strategy['name']}{tiers}.")
    if summary.get("per_client"):
        pc = summary["per_client"]
        lines.append(
            f"  Clients: per-client {pc.get('metric', 'accuracy')} of the global model mean {pc['mean']:.3f}, "
            f"worst 10% "
            f"{pc['worst_10pct']:.3f} over {pc['clients']} clients with held-out examples."
        )
        own = pc.get("personalised")
        if own:
            how = f", after {own['finetune_steps']} local fine-tuning steps" if own["finetune_steps"] else ""
            lines.append(
                f"           personalised (each client's own model{how}): mean {own['mean']:.3f}, "
                f"worst 10% {own['worst_10pct']:.3f}."
            )
    return lines


def _cost(summary: dict[str, Any]) -> list[str]:
    c = summary["ledger"]
    lines: list[str] = []
    per = c["bytes_up"] / max(summary["updates_accepted"] + c["rejected_updates"], 1)
    lines.append(
        f"  Cost:    {human_bytes(c['bytes_up'])} up, {human_bytes(c['bytes_down'])} down "
        f"({human_bytes(per)} per client update); time: local training "
        f"{human_seconds(c['seconds']['train'])}, aggregation {human_seconds(c['seconds']['aggregate'])}, "
        f"evaluation {human_seconds(c['seconds']['evaluate'])}; peak memory {c['peak_rss_mb'] / 1024:.2f} GiB."
    )
    if c.get("simulated_seconds") is not None:
        lines[-1] += f" Simulated clock: {human_seconds(c['simulated_seconds'])} for all rounds."
    if c.get("flops"):
        lines.append(
            f"  Compute: local training {c['flops'] / 1e12:.2f} TFLOPs and {c['energy_wh_estimate']:.2f} Wh "
            f"(estimates: counted FLOPs per token or image, CPU time x {c['watts_per_core']:g} W per core); "
            f"peak memory while a client trained {c['peak_client_mb'] / 1024:.2f} GiB."
        )
    return lines


def _noise_source(dp: dict[str, Any]) -> str:
    if dp.get("secret_noise"):
        return "Noise from OS entropy (not reproducible)."
    return (
        "Noise seeded by the run's seed: reproducible, and removable by anyone who knows that seed "
        "(privacy.secure_noise: true for a release)."
    )


def _privacy(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    dp = summary.get("privacy")
    if dp:
        eps = "infinite (no noise)" if dp["epsilon"] == float("inf") else f"{dp['epsilon']:.2f}"
        lines.append(
            f"  Privacy: client-level DP ({dp['client_dp']} noise), noise multiplier {dp['noise_multiplier']:.3f}, "
            f"clip {dp['clip']:.3g}; epsilon {eps} at delta {dp['delta']:.1e} (adjacency: {dp['adjacency']}; "
            f"{dp['accountant']})."
        )
        lines.append(f"  Client sampling: {dp['sampling']}. {_noise_source(dp)}")
    sgd = summary.get("dp_sgd")
    if sgd:
        noise = (
            f"noise multiplier {sgd['noise_multiplier']:.3f}"
            if sgd["target_epsilon"] is None
            else f"noise calibrated per client to epsilon <= {sgd['target_epsilon']:g}"
        )
        lines.append(
            f"  Privacy: sample-level DP-SGD in local training, {noise}, per-example clip {sgd['max_grad_norm']:g} "
            f"({sgd['per_example_gradients']}); client epsilon max {sgd['max_client_epsilon']:.2f}, median "
            f"{sgd['median_client_epsilon']:.2f} over {sgd['clients']} clients at delta {sgd['delta']:.0e}, for "
            f"add/remove-one-example adjacency with Poisson-sampled batches (Opacus RDP). {_noise_source(sgd)}"
        )
    sec = summary.get("secure_aggregation")
    if sec and sec.get("protocol") == "flower secagg+":
        lines.append(
            f"  Privacy: Flower's SecAgg+: the server saw only masked, quantised updates (coordinates within "
            f"+-{sec['bound']:g}) and each round's mean; {sec['clients_needed']} clients per round needed to unmask."
        )
    elif sec:
        lines.append(
            f"  Privacy: secure aggregation (pairwise masks, Shamir-shared keys): the server saw only masked "
            f"fixed-point updates ({sec['frac_bits']} fraction bits, coordinates within +-{sec['bound']:g}) and "
            f"each round's mean; {sec['clients_needed']} clients per round needed to unmask."
        )
    return lines


def _wire_and_outputs(summary: dict[str, Any]) -> list[str]:
    c = summary["ledger"]
    lines: list[str] = []
    comp = summary.get("compression") or {}
    if comp and (comp.get("uplink") != "none" or comp.get("downlink") != "none"):
        feedback = " with error feedback" if comp.get("error_feedback") else ""
        lines.append(f"  Wire:    uplink {comp['uplink']}{feedback}; downlink {comp['downlink']}.")
    if c["failed_rounds"] or c["rejected_updates"] or c.get("dropped_clients"):
        lines.append(
            f"  Issues:  {c['failed_rounds']} round(s) failed, {c['rejected_updates']} update(s) rejected, "
            f"{c.get('dropped_clients', 0)} client(s) dropped out or late ({c.get('late_updates', 0)} late "
            "update(s) used); reasons in metrics.jsonl."
        )
    files = ["metrics.jsonl", "summary.json", *summary.get("outputs", [])]
    lines.append(f"  Outputs: {summary['run_dir']}/ ({', '.join(files)})")
    return lines
