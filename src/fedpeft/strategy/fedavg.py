"""FedAvg (McMahan et al., 2017): the example-weighted mean of client deltas, applied with a server step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fedpeft.config.schema import RunConfig
from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, sample_clients


def weighted_mean(updates: Sequence[ClientUpdate]) -> TensorDict:
    """sum_i n_i * delta_i / sum_i n_i, accumulated in float32."""
    total = float(sum(u.num_examples for u in updates))
    mean: TensorDict = {}
    for name in updates[0].delta:
        acc = torch.zeros_like(updates[0].delta[name], dtype=torch.float32)
        for u in updates:
            acc.add_(u.delta[name].float(), alpha=u.num_examples / total)
        mean[name] = acc
    return mean


class FedAvg:
    """Weighted FedAvg with a server learning rate (1.0 gives the classic algorithm).

    Example:
        >>> s = FedAvg(per_round=2)
        >>> ups = [ClientUpdate("a", {"w": torch.tensor([1.0])}, 1), ClientUpdate("b", {"w": torch.tensor([4.0])}, 3)]
        >>> s.aggregate_train(1, {"w": torch.tensor([0.0])}, ups)["w"].tolist()
        [3.25]
    """

    def __init__(self, per_round: int, server_lr: float = 1.0) -> None:
        self.per_round = per_round
        self.server_lr = server_lr

    def configure_train(self, round_: int, client_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        return sample_clients(client_ids, self.per_round, rng)

    def aggregate_train(self, round_: int, global_state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        mean = weighted_mean(updates)
        return {
            n: (w.float() + self.server_lr * mean[n]).to(w.dtype) for n, w in global_state.items()
        }


@STRATEGIES.register("fedavg")
def _fedavg(cfg: RunConfig) -> FedAvg:
    return FedAvg(cfg.clients.per_round, cfg.strategy.server_lr)
