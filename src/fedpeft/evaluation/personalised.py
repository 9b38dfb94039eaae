"""Personalised evaluation: each client scores its held-out examples with the model it would run itself.

That model is the global one at the client's LoRA rank, with the client's personal tensors (FedSA-LoRA's B)
and, if asked, a few steps of local fine-tuning on the client's own training examples. The shared model is
restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from fedpeft.client.app import FederatedClient, client_seed, derived_seed
from fedpeft.client.plugins import FitContext, RankMask, gradient_hooks
from fedpeft.model.state import TensorDict


def needs_personalisation(client: FederatedClient, finetune_steps: int) -> bool:
    """False when every client's own model is the global one (nothing personal, no fine-tuning)."""
    return finetune_steps > 0 or any(p.personal for p in client.plugins)


def personalised_metrics(
    client: FederatedClient,
    global_state: TensorDict,
    groups: Sequence[tuple[str, np.ndarray]],
    local_test: Any,
    *,
    rank_of: Callable[[str], int | None],
    finetune_steps: int,
    round_: int,
    score: Callable[[torch.nn.Module, Any], dict[str, float]],
) -> dict[str, dict[str, float]]:
    """Metrics per client id of its personalised model on its held-out examples; ``score(model, examples)``
    gives them (classification metrics, perplexity)."""
    plugins = [p for p in client.plugins if p.personal]
    trainable, trainer = client.trainable, client.trainer
    out: dict[str, dict[str, float]] = {}
    for cid, idx in groups:
        if not len(idx):
            continue
        trainable.load(global_state)
        rank = rank_of(cid)
        ctx = FitContext(
            round_,
            cid,
            {} if rank is None else {"rank": rank},
            {},
            trainable.params,
            dict(client.store.get(cid) or {}),
            trainer.cfg.lr,
        )
        for plugin in plugins:
            plugin.receive(ctx)
        for plugin in plugins:
            plugin.start(ctx)
        if finetune_steps:
            torch.manual_seed(derived_seed(client_seed(client.seed, round_, cid), 0xF7))
            trainer.train(
                client.data[cid],
                np.random.default_rng([*client_seed(client.seed, round_, cid), 0xF7]),
                local_steps=finetune_steps,
                on_gradients=gradient_hooks([p for p in plugins if isinstance(p, RankMask)], ctx),
            )
        out[cid] = score(trainer.model, local_test.subset(idx))
    trainable.load(global_state)
    return out


def spread(by_client: dict[str, dict[str, float]], key: str = "accuracy") -> dict[str, Any]:
    """Mean of a metric over clients and the mean of the worst 10% of them (lowest accuracy, highest
    perplexity or loss).

    Example:
        >>> spread({str(i): {"accuracy": i / 10} for i in range(10)})
        {'mean': 0.45, 'worst_10pct': 0.0, 'clients': 10, 'metric': 'accuracy'}
    """
    values = np.sort([m[key] for m in by_client.values()])
    if key in ("perplexity", "loss"):
        values = values[::-1]
    worst = values[: max(1, int(np.ceil(0.1 * len(values))))]
    return {"mean": float(values.mean()), "worst_10pct": float(worst.mean()), "clients": len(values), "metric": key}
