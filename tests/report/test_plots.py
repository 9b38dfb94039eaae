"""The run's plots: what a reader needs is on them and nothing is cut off."""

from __future__ import annotations

from typing import Any

import pytest

from fedpeft.report.plots import confusion_figure, curves_figure


def inside(fig: Any, artist: Any) -> bool:
    fig.canvas.draw()
    box, page = artist.get_window_extent(), fig.bbox
    return box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1


@pytest.mark.parametrize("labels", [["rotten", "fresh"], [str(d) for d in range(10)]])
def test_the_confusion_matrix_title_fits_the_figure(labels: list[str]) -> None:
    n = len(labels)
    fig = confusion_figure({"labels": labels, "confusion": [[5 if i == j else 1 for j in range(n)] for i in range(n)]})
    assert inside(fig, fig.axes[0].title)


def test_language_model_curves_show_perplexity_and_whole_rounds() -> None:
    records = [
        {"round": r, "test": {"rouge_l": 0.1 * r, "exact_match": 0.0, "perplexity": 30.0 - r, "loss": 3.0 - 0.1 * r}}
        for r in (0, 2, 3, 5)
    ]
    fig = curves_figure(records)
    labels = [line.get_label() for ax in fig.axes for line in ax.lines]
    assert "perplexity" in labels and "ROUGE-L" in labels
    ticks = [t for t in fig.axes[0].get_xticks() if 0 <= t <= 5]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_classification_curves_keep_the_majority_line() -> None:
    records = [{"round": r, "test": {"accuracy": 0.5 + 0.01 * r, "macro_f1": 0.5, "loss": 0.7}} for r in range(3)]
    fig = curves_figure(records, baseline=0.58)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert "majority class (0.580)" in labels and "perplexity" not in labels
