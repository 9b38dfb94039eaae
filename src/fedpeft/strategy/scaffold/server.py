"""SCAFFOLD (Karimireddy et al., 2020): control variates remove client drift under heterogeneous data.

The server keeps c and sends it with the model; each client keeps its own c_i across rounds (in the client
state store), corrects its gradients by c - c_i and sends back, beside its model delta, the change of c_i
(see ``ControlVariates`` for how c_i is estimated). Uplink and downlink both double.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fedpeft.client.plugins import ClientPlugin, Scalar
from fedpeft.model.lora_factors import Spec
from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, StrategySpec, step, weighted_mean
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.scaffold.client import ControlVariates
from fedpeft.strategy.scaffold.config import ScaffoldStrategy

C, DC = ControlVariates.PREFIX_C, ControlVariates.PREFIX_DC


class Scaffold(FedAvg):
    """x += server_lr * weighted mean of the deltas; c += (|S| / N) * mean of the clients' control changes.

    Example:
        >>> s = Scaffold(per_round=2); s.initialize({"w": torch.zeros(1)}, num_clients=4)
        >>> dc = {"a": 2.0, "b": 4.0}
        >>> ups = [ClientUpdate(k, {"w": torch.ones(1), "scaffold.dc/w": torch.tensor([d])}, 1) for k, d in dc.items()]
        >>> s.aggregate_train(1, ups); s.control["w"].tolist()  # (2 / 4) * mean(2, 4)
        [1.5]
    """

    STATE = (*FedAvg.STATE, "control")

    def initialize(
        self,
        state: TensorDict,
        ranks: Mapping[str, int] | None = None,
        num_clients: int | None = None,
        keep_past: int = 0,
    ) -> None:
        if ranks:
            raise ValueError(
                "SCAFFOLD's control variates are not defined for clients of mixed LoRA ranks; "
                "drop resources.rank_tiers or pick a LoRA-aware strategy"
            )
        super().initialize(state, ranks, num_clients, keep_past)
        self.control = {n: torch.zeros_like(t, dtype=torch.float32) for n, t in self.global_state.items()}

    def downlink(self, round_: int, client_id: str) -> tuple[TensorDict, dict[str, Scalar]]:
        tensors, config = super().downlink(round_, client_id)
        return {**tensors, **{C + n: c for n, c in self.control.items()}}, config

    def uplink_spec(self, client_id: str, metrics: Mapping[str, float]) -> Spec:
        spec = super().uplink_spec(client_id, metrics)
        return {**spec, **{DC + n: (tuple(c.shape), torch.float32) for n, c in self.control.items()}}

    streams = False  # needs the plain mean of the control-variate changes too: updates kept until the round ends

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        new = step(state, weighted_mean(updates, list(state)), self.server_lr)
        clients = sum(u.clients for u in updates)  # a combined update stands for its members (or DP's expected count)
        total = self.num_clients or clients
        for n, c in self.control.items():
            mean_dc = torch.stack([u.delta[DC + n].float() for u in updates]).mean(0)
            c.add_(mean_dc, alpha=clients / total)
        return new

    def client_plugins(self) -> list[ClientPlugin]:
        return [ControlVariates()]


STRATEGIES.register("scaffold")(
    StrategySpec(lambda s, per_round, _model: Scaffold(per_round, s.server_lr), ScaffoldStrategy)
)
