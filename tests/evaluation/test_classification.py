"""Classification metrics: accuracy, macro-F1, per-class recall and the confusion matrix."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.evaluation.classification import Predictions, class_report, metrics


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6), st.integers(1, 60), st.integers(0, 10_000))
def test_recall_and_confusion_agree_with_counting(k: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, predicted = rng.integers(0, k, n), rng.integers(0, k, n)
    report = class_report(Predictions(predicted, labels, np.zeros(n)), [f"c{i}" for i in range(k)])
    cm = np.asarray(report["confusion"])
    assert cm.sum() == n and (cm.sum(1) == np.bincount(labels, minlength=k)).all()
    for i in range(k):
        true = labels == i
        r = report["recall"][f"c{i}"]  # type: ignore[index]
        assert math.isnan(r) if not true.any() else r == (predicted[true] == i).mean()
    acc = metrics(Predictions(predicted, labels, np.zeros(n)), k)["accuracy"]
    assert acc == np.trace(cm) / n


def test_report_in_a_run_summary(tiny_config: dict) -> None:
    import fedpeft
    from fedpeft.report import summary_text

    tiny_config["output"]["plot"] = True
    summary = fedpeft.run(tiny_config, ["rounds=1"], progress=False)
    classes = summary["classes"]
    assert classes["labels"] == ["neg", "pos"] and sum(map(sum, classes["confusion"])) == summary["final"]["examples"]
    assert "Recall:  per class" in summary_text(summary) and "confusion.png" in summary["outputs"]
