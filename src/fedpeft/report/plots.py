"""Plots a person reads faster than a table: curves per round, label mix per client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(records: list[dict[str, Any]], path: Path, baseline: float | None = None) -> Path:
    """Test accuracy / macro-F1 (perplexity for language models) and loss per round (round 0 is the model
    before training), saved to ``path``."""
    fig = curves_figure(records, baseline)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def curves_figure(records: list[dict[str, Any]], baseline: float | None = None) -> Any:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    rows = [r for r in records if r.get("test")]
    rounds = [r["round"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label, mark in (
        ("accuracy", "accuracy", "o"),
        ("macro_f1", "macro-F1", "."),
        ("rouge_l", "ROUGE-L", "o"),
        ("exact_match", "exact match", "."),
    ):
        if all(key in r["test"] for r in rows):
            ax1.plot(rounds, [r["test"][key] for r in rows], marker=mark, label=label)
    if baseline is not None:
        ax1.axhline(baseline, ls="--", c="grey", lw=1, label=f"majority class ({baseline:.3f})")
    if rows and all("perplexity" in r["test"] for r in rows):  # language models: perplexity, on its own axis
        ppl_ax = ax1.twinx() if ax1.lines else ax1
        ppl_ax.plot(rounds, [r["test"]["perplexity"] for r in rows], marker="s", c="C3", label="perplexity")
        ppl_ax.set_ylabel("perplexity")
        if ppl_ax is not ax1:
            ppl_ax.legend(loc="upper right")
    ax1.set_xlabel("round")
    ax1.set_title("central test set")
    ax1.legend(loc="lower right")
    ax1.grid(alpha=0.3)
    ax2.plot(
        rounds,
        [r["test"]["loss"] for r in rows],
        marker="o",
        label="test loss (per target token)" if "perplexity" in rows[0]["test"] else "test loss",
    )
    train = [(r["round"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    if train:
        ax2.plot(*zip(*train), marker=".", label="clients' train loss")
    ax2.set_xlabel("round")
    ax2.set_title("loss")
    ax2.legend()
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
    fig.tight_layout()
    return fig


def plot_partition(histograms: list[list[int]], label_names: list[str], path: Path, max_clients: int = 60) -> Path:
    """Stacked bars of each client's label counts (the largest clients when there are many)."""
    plt = _pyplot()
    counts = np.asarray(histograms)
    order = np.argsort(-counts.sum(1), kind="stable")[:max_clients]
    counts = counts[order]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    bottom = np.zeros(len(counts))
    for j, name in enumerate(label_names):
        ax.bar(range(len(counts)), counts[:, j], bottom=bottom, label=name, width=0.85)
        bottom += counts[:, j]
    shown = f"largest {len(counts)} of {len(histograms)}" if len(histograms) > len(counts) else "all"
    ax.set_title(f"label mix per client ({shown} clients)")
    ax.set_xlabel("client (by size)")
    ax.set_ylabel("training examples")
    ax.legend(ncol=min(len(label_names), 6), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(report: dict[str, Any], path: Path) -> Path:
    """The confusion matrix as shares of each true class (rows), with each class's recall on the diagonal."""
    fig = confusion_figure(report)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def confusion_figure(report: dict[str, Any]) -> Any:
    plt = _pyplot()
    cm = np.asarray(report["confusion"], dtype=np.float64)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    names = report["labels"]
    side = max(3.5, 0.45 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if len(names) <= 20:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 6 else 0, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test confusion matrix\n(counts; colour = share of the true class)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
