"""FlexLoRA (Bai et al., 2024): aggregate full-size updates, then give each client its best rank-r_i part.

The server forms sum_i w_i B_i A_i from the clients' factors (any mix of ranks) and factorises it by SVD
into the model's largest rank, components sorted by singular value. A client of rank r receives the first r
components, which is exactly the best rank-r approximation. The global model is that largest-rank
factorisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedpeft.model.lora_factors import product, split
from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, StrategySpec
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.flexlora.config import FlexLoraStrategy


class FlexLora(FedAvg):
    """W = sum_i w_i B_i A_i per adapted layer (a server step towards it when server_lr < 1), then SVD.

    Example:
        >>> FlexLora(per_round=10).server_lr
        1.0
    """

    streams = False  # needs each client's product B_i A_i: the updates are kept until the round ends

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        new = self.step_non_factors(state, updates)
        total = float(sum(u.weight for u in updates))
        starts = [self.start_state(u, round_) for u in updates]
        for p in self.pairs:
            target = torch.zeros_like(product(state[p.a], state[p.b]))
            for u, start in zip(updates, starts):
                a = start[p.a].float() + u.delta[p.a].float()
                b = start[p.b].float() + u.delta[p.b].float()
                target.add_(product(a, b), alpha=u.weight / total)
            if self.server_lr != 1.0:
                prev = product(state[p.a], state[p.b])
                target = prev + self.server_lr * (target - prev)
            new[p.a], new[p.b] = split(target, self.full_rank, state[p.a], state[p.b])
        return new


STRATEGIES.register("flexlora")(
    StrategySpec(lambda s, per_round, _model: FlexLora(per_round, s.server_lr), FlexLoraStrategy)
)
