"""Classification metrics: accuracy, macro-F1 and loss, from one batched pass over the examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedpeft.data.batching import TokenizedDataset, length_sorted_batches


@dataclass(frozen=True)
class Predictions:
    """Predicted labels, true labels and per-example losses, in the dataset's order."""

    predicted: np.ndarray
    labels: np.ndarray
    losses: np.ndarray

    def subset(self, idx: np.ndarray) -> Predictions:
        return Predictions(self.predicted[idx], self.labels[idx], self.losses[idx])


@torch.inference_mode()
def predict(model: nn.Module, data: TokenizedDataset, batch_size: int) -> Predictions:
    """Run the model over ``data`` in length-sorted batches (less padding); results keep data's order."""
    model.eval()
    n = len(data)
    predicted = np.zeros(n, dtype=np.int64)
    losses = np.zeros(n, dtype=np.float64)
    for idx in length_sorted_batches([len(x) for x in data.input_ids], batch_size):
        batch = data.batch(idx)
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        predicted[idx] = logits.argmax(-1).numpy()
        losses[idx] = nn.functional.cross_entropy(logits, labels, reduction="none").numpy()
    return Predictions(predicted, data.labels.copy(), losses)


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Rows are true labels, columns predicted labels."""
    return np.bincount(labels * num_labels + predicted, minlength=num_labels * num_labels).reshape(
        num_labels, num_labels
    )


def metrics(pred: Predictions, num_labels: int) -> dict[str, float]:
    """Accuracy, macro-F1 (over labels present in truth or prediction) and mean loss.

    Example:
        >>> p = Predictions(np.array([0, 1, 1]), np.array([0, 1, 0]), np.zeros(3))
        >>> round(metrics(p, 2)["macro_f1"], 4)
        0.6667
    """
    if len(pred.labels) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "loss": float("nan"), "examples": 0.0}
    cm = confusion_matrix(pred.predicted, pred.labels, num_labels).astype(np.float64)
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    return {
        "accuracy": float(tp.sum() / cm.sum()),
        "macro_f1": float(f1[present].mean()),
        "loss": float(pred.losses.mean()),
        "examples": float(len(pred.labels)),
    }


def per_client_metrics(
    pred: Predictions, groups: Sequence[tuple[str, np.ndarray]], num_labels: int
) -> dict[str, dict[str, float]]:
    """Metrics for each (client id, indices into ``pred``) group."""
    return {cid: metrics(pred.subset(idx), num_labels) for cid, idx in groups if len(idx)}
