"""Local objectives for label-skewed clients: the client's own label counts shift its logits in the loss.

A client that holds mostly one label learns, with plain cross-entropy, to predict that label; averaged over
clients with different majorities the global model drifts to whichever label the last clients favoured.
Both objectives below add a per-class offset to the logits *in the training loss only*, so that the
client's prior is explained by the offset instead of being written into the shared tensors; evaluation
uses the raw logits.

- ``balanced_softmax``: logits + log n_y (Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual
  Recognition", NeurIPS 2020), used for federated label skew by FedLC and FedRS-style methods.
- ``logit_calibration``: logits - tau * n_y^(-1/4) (Zhang et al., "Federated Learning with Label
  Distribution Skew via Logits Calibration", ICML 2022: FedLC).

A label the client does not hold gets a count of ``ABSENT`` (far below one example): its logit is pushed
so low that the client neither learns nor unlearns it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

Objective = Literal["cross_entropy", "balanced_softmax", "logit_calibration"]
ABSENT = 1e-4  # the count a missing label is given: finite, so no -inf reaches the softmax


def label_counts(data: object) -> np.ndarray | None:
    """Examples per label of a classification client's data (None when it has no class labels)."""
    labels = getattr(data, "labels", None)
    if labels is None:
        tensors = getattr(data, "tensors", None)
        labels = tensors.get("labels") if isinstance(tensors, dict) else None
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        return None
    return np.bincount(labels.astype(np.int64), minlength=int(labels.max()) + 1)


def logit_offsets(objective: Objective, counts: np.ndarray, num_classes: int, tau: float = 1.0) -> torch.Tensor:
    """The per-class offsets ``objective`` adds to the logits, for a client with ``counts`` examples per label.

    Example:
        >>> logit_offsets("logit_calibration", np.array([16, 1]), 2).tolist()
        [-0.5, -1.0]
        >>> logit_offsets("balanced_softmax", np.array([1, 1]), 2).tolist()
        [0.0, 0.0]
    """
    n = np.zeros(num_classes, dtype=np.float64)
    n[: min(len(counts), num_classes)] = counts[:num_classes]
    n = np.where(n > 0, n, ABSENT)
    if objective == "balanced_softmax":
        return torch.tensor(np.log(n), dtype=torch.float32)
    if objective == "logit_calibration":
        return torch.tensor(-tau * n ** (-0.25), dtype=torch.float32)
    raise ValueError(f"no logit offsets for objective {objective!r}")


def offset_loss(logits: torch.Tensor, labels: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (shifted by ``offsets`` when given) against ``labels``."""
    logits = logits.float()
    if offsets is not None:
        logits = logits + offsets.to(logits.device)
    return nn.functional.cross_entropy(logits, labels)


class ClientObjective:
    """The loss one client trains on: plain cross-entropy, or one of the label-skew objectives above.

    Example:
        >>> from types import SimpleNamespace
        >>> obj = ClientObjective("logit_calibration", tau=1.0)
        >>> obj.start(SimpleNamespace(labels=np.array([0, 0, 0, 0, 1])))
        >>> obj.offsets(2).tolist()
        [-0.7071067690849304, -1.0]
    """

    def __init__(self, objective: Objective = "cross_entropy", tau: float = 1.0) -> None:
        self.objective, self.tau = objective, tau
        self.counts: np.ndarray | None = None
        self._offsets: torch.Tensor | None = None  # this client's, computed at its first batch

    @property
    def plain(self) -> bool:
        return self.objective == "cross_entropy"

    def start(self, data: object) -> None:
        """Take the label counts of the client about to train (fails clearly on data without class labels)."""
        if self.plain:
            return
        self.counts, self._offsets = label_counts(data), None
        if self.counts is None:
            raise ValueError(
                f"clients.loss={self.objective} needs class labels (a classification task); "
                "set clients.loss: cross_entropy"
            )

    def offsets(self, num_classes: int) -> torch.Tensor | None:
        if self.plain:
            return None
        assert self.counts is not None, "call start(data) before the first batch"
        if self._offsets is None or len(self._offsets) != num_classes:  # once per client, not per step
            self._offsets = logit_offsets(self.objective, self.counts, num_classes, self.tau)
        return self._offsets

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return offset_loss(logits, labels, self.offsets(logits.shape[-1]))
