"""Classification metrics: accuracy, macro-F1 and loss, from one batched pass over the examples."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from fedpeft.data.batching import TokenizedDataset, length_sorted_batches
from fedpeft.model.device import model_device, on_device


@dataclass(frozen=True)
class Predictions:
    """Predicted labels, true labels and per-example losses, in the dataset's order."""

    predicted: np.ndarray
    labels: np.ndarray
    losses: np.ndarray

    def subset(self, idx: np.ndarray) -> Predictions:
        return Predictions(self.predicted[idx], self.labels[idx], self.losses[idx])


class LabelledInputs(Protocol):
    """Model inputs with a label per example (token ids, pixels)."""

    @property
    def labels(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]: ...

    def subset(self, idx: np.ndarray) -> LabelledInputs: ...


def _batches(data: LabelledInputs, batch_size: int) -> Iterator[np.ndarray]:
    if isinstance(data, TokenizedDataset):  # similar lengths together: far less padding, same results
        return length_sorted_batches([len(x) for x in data.input_ids], batch_size)
    return iter(np.array_split(np.arange(len(data)), max(1, -(-len(data) // batch_size))))


@torch.inference_mode()
def predict(model: nn.Module, data: LabelledInputs, batch_size: int) -> Predictions:
    """Run the model over ``data`` in batches (length-sorted for text); results keep data's order."""
    model.eval()
    device = model_device(model)
    n = len(data)
    predicted = np.zeros(n, dtype=np.int64)
    losses = np.zeros(n, dtype=np.float64)
    for idx in _batches(data, batch_size):
        batch = data.batch(idx)
        labels = batch.pop("labels")
        logits = model(**on_device(batch, device)).logits.float().cpu()
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


def class_report(pred: Predictions, label_names: Sequence[str]) -> dict[str, object]:
    """Recall of every class and the confusion matrix (rows true, columns predicted).

    Example:
        >>> r = class_report(Predictions(np.array([0, 1, 1]), np.array([0, 1, 0]), np.zeros(3)), ["a", "b"])
        >>> r["recall"], r["confusion"]
        ({'a': 0.5, 'b': 1.0}, [[1, 1], [0, 1]])
    """
    cm = confusion_matrix(pred.predicted, pred.labels, len(label_names))
    support = cm.sum(1)
    recall = {name: float(cm[i, i] / support[i]) if support[i] else float("nan") for i, name in enumerate(label_names)}
    return {"labels": list(label_names), "recall": recall, "confusion": cm.tolist()}


def per_client_metrics(
    pred: Predictions, groups: Sequence[tuple[str, np.ndarray]], num_labels: int
) -> dict[str, dict[str, float]]:
    """Metrics for each (client id, indices into ``pred``) group."""
    return {cid: metrics(pred.subset(idx), num_labels) for cid, idx in groups if len(idx)}
