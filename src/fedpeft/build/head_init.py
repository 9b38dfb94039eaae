"""Set the classification head before round 1 from the clients' feature statistics, in closed form.

Under label skew the head is what FedAvg breaks first: each client drags the classifier towards its own
labels. A head solved from statistics that are sums over clients does not depend on how the examples are
split: every client sends the sums of its frozen features once, the server adds them and solves.

- ``class_means``: FedNCM (Legate et al., "Guiding the Last Layer in Federated Learning with Pre-Trained
  Models", NeurIPS 2023). Clients send per-class feature sums and counts; the head is the nearest class
  mean, as a linear layer (weight mu_c, bias -|mu_c|^2 / 2).
- ``ridge``: Fed3R (Fanì et al., "Accelerating Heterogeneous Federated Learning with Closed-form
  Classifiers", ICML 2024). Clients send X^T X and X^T Y (features with a constant 1, one-hot labels); the
  head is the ridge regression W = (sum X^T X + lambda I)^-1 sum X^T Y.

Fine-tuning then starts from that head (FedNCM+FT, Fed3R+FT).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fedpeft.data.batching import ClientDataset
from fedpeft.errors import ModelError
from fedpeft.model.anatomy import HEAD_MODULES

HeadInit = Literal["class_means", "ridge"]


def find_head(model: nn.Module, num_labels: int) -> tuple[str, nn.Linear]:
    """The linear layer that gives the class logits: the last ``nn.Linear`` with ``num_labels`` outputs under a
    ``classifier`` / ``score`` module (the copy peft trains, never its frozen original).

    Example:
        >>> m = nn.Sequential(); m.add_module("classifier", nn.Linear(4, 3))
        >>> find_head(m, 3)[0]
        'classifier'
    """
    found = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear)
        and mod.out_features == num_labels
        and set(name.split(".")) & set(HEAD_MODULES)
        and "original_module" not in name.split(".")
    ]
    if not found:
        raise ModelError(
            f"model.head_init: {type(model).__name__} has no linear layer with {num_labels} outputs under a "
            f"{' / '.join(HEAD_MODULES)} module to set; set model.head_init: none"
        )
    return found[-1]


@dataclass
class HeadStatistics:
    """Sums of features over examples: what clients send. ``add`` folds one client's (or one batch's) in.

    Example:
        >>> s = HeadStatistics.empty("class_means", dim=2, num_labels=2)
        >>> s.add(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([0, 0]))
        >>> s.sums["class_sum"][0].tolist(), s.sums["count"].tolist()
        ([4.0, 0.0], [2.0, 0.0])
    """

    kind: HeadInit
    sums: dict[str, torch.Tensor]

    @classmethod
    def empty(cls, kind: HeadInit, dim: int, num_labels: int) -> HeadStatistics:
        def z(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.float64)

        if kind == "class_means":
            return cls(kind, {"class_sum": z(num_labels, dim), "count": z(num_labels)})
        return cls(kind, {"gram": z(dim + 1, dim + 1), "cross": z(dim + 1, num_labels)})

    def add(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        x = features.detach().to(torch.float64).cpu()
        onehot = nn.functional.one_hot(labels.cpu().long(), self.num_labels).to(torch.float64)
        if self.kind == "class_means":
            self.sums["class_sum"] += onehot.T @ x
            self.sums["count"] += onehot.sum(0)
        else:
            x1 = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
            self.sums["gram"] += x1.T @ x1
            self.sums["cross"] += x1.T @ onehot

    def merge(self, other: HeadStatistics) -> None:
        for k, v in other.sums.items():
            self.sums[k] += v

    @property
    def num_labels(self) -> int:
        return int(self.sums["count"].numel() if self.kind == "class_means" else self.sums["cross"].shape[1])

    @property
    def examples(self) -> int:
        return int(self.sums["count"].sum() if self.kind == "class_means" else self.sums["gram"][-1, -1])

    @property
    def nbytes(self) -> int:
        """What one client sends: its sums as float64 (the Gram matrix's upper triangle only)."""
        if self.kind == "ridge":
            d = self.sums["gram"].shape[0]
            return 8 * (d * (d + 1) // 2 + self.sums["cross"].numel())
        return 8 * sum(t.numel() for t in self.sums.values())

    def solve(self, ridge: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [num_labels, dim], bias [num_labels]) of the head these sums give."""
        if self.kind == "class_means":
            count = self.sums["count"]
            mean = self.sums["class_sum"] / count.clamp(min=1.0)[:, None]
            bias = -0.5 * (mean**2).sum(1)
            if (count == 0).any():  # a class no client has: never predicted until training finds it
                bias[count == 0] = bias[count > 0].min() - 1e4
            return mean, bias
        gram, cross = self.sums["gram"], self.sums["cross"]
        penalty = ridge * torch.eye(gram.shape[0], dtype=torch.float64)
        w = torch.linalg.solve(gram + penalty, cross)
        return w[:-1].T.contiguous(), w[-1].contiguous()


def client_statistics(
    model: nn.Module, head: nn.Linear, data: ClientDataset, kind: HeadInit, device: torch.device, batch_size: int
) -> HeadStatistics:
    """One client's sums, from the features the head reads (its input) on the client's own examples."""
    stats = HeadStatistics.empty(kind, head.in_features, head.out_features)
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    tokens = getattr(data, "input_ids", None)  # texts: batch similar lengths together, so little padding
    order = np.argsort([len(t) for t in tokens], kind="stable") if tokens is not None else np.arange(len(data))
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                batch = data.batch(order[start : start + batch_size])
                seen.clear()
                model(**{k: v.to(device) for k, v in batch.items() if k != "labels"})
                stats.add(seen[-1].reshape(len(batch["labels"]), -1), batch["labels"])
    finally:
        hook.remove()
    return stats


def initialize_head(
    model: nn.Module,
    num_labels: int,
    clients: Mapping[str, ClientDataset],
    kind: HeadInit,
    ridge: float,
    device: torch.device,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Set the model's head from the clients' summed statistics; return what it cost and did (for the run's
    summary). The model is in eval mode while the clients compute (no dropout), and left as it was."""
    name, head = find_head(model, num_labels)
    total = HeadStatistics.empty(kind, head.in_features, num_labels)
    was_training = model.training
    model.eval()
    sent = 0
    try:
        for data in tqdm(clients.values(), desc=f"head init ({kind})", unit="client", leave=False):
            stats = client_statistics(model, head, data, kind, device, batch_size)
            total.merge(stats)
            sent += stats.nbytes
    finally:
        model.train(was_training)
    if total.examples == 0:
        raise ModelError("model.head_init: the clients hold no training examples to compute the head from")
    weight, bias = total.solve(ridge)
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(bias.to(head.bias.dtype))
    return {"kind": kind, "head": name, "clients": len(clients), "bytes_up_once": sent}
