"""Apply a run's configured method to its model, letting data-driven methods see the clients' data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from fedpeft.config.schema import RunConfig
from fedpeft.data.batching import ClientDataset
from fedpeft.methods.registry import METHODS


def apply_configured(
    cfg: RunConfig, model: nn.Module, task: str, client_data: Mapping[str, ClientDataset]
) -> tuple[nn.Module, dict[str, Any]]:
    """Apply the PEFT method; methods that choose their weights from data see a seeded sample of clients,
    each scoring on its own examples."""
    spec = METHODS.get(cfg.peft.method)
    if spec.calibrate is None:
        return spec.apply(model, cfg.peft, task), {}
    rng = np.random.default_rng([cfg.seed, 0xF15E])
    ids = list(client_data)
    limit = getattr(cfg.peft, "fisher_clients", None) or len(ids)
    chosen = [ids[i] for i in sorted(rng.choice(len(ids), size=min(limit, len(ids)), replace=False))]
    per_client = getattr(cfg.peft, "fisher_examples", 32)

    def batches(data: ClientDataset) -> Iterator[dict[str, torch.Tensor]]:
        order = rng.permutation(len(data))[:per_client]
        for start in range(0, len(order), cfg.clients.batch_size):
            yield data.batch(order[start : start + cfg.clients.batch_size])

    return spec.calibrate(model, cfg.peft, task, (batches(client_data[c]) for c in chosen))
