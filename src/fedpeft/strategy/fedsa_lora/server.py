"""FedSA-LoRA (Guo et al., 2025): A learns what clients share and is averaged; B stays on each client.

The server never sees B. The global model carries the initial B (zero), so its accuracy is that of the shared
part alone; the personalised model (global A with a client's own B) is the one to evaluate per client.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedpeft.client.plugins import ClientPlugin
from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import STRATEGIES, StrategySpec
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.fedsa_lora.client import PersonalTensors
from fedpeft.strategy.fedsa_lora.config import FedSALoraStrategy


class FedSALora(FedAvg):
    """FedAvg over A (and any head); every B is a personal tensor of its client.

    Example:
        >>> import torch
        >>> s = FedSALora(per_round=2)
        >>> s.initialize({"m.lora_A.default.weight": torch.ones(2, 3), "m.lora_B.default.weight": torch.zeros(3, 2)})
        >>> sorted(s.downlink(1, "c0")[0])
        ['m.lora_A.default.weight']
    """

    def initialize(
        self,
        state: TensorDict,
        ranks: Mapping[str, int] | None = None,
        num_clients: int | None = None,
        keep_past: int = 0,
    ) -> None:
        super().initialize(state, ranks, num_clients, keep_past)
        self.personal_names = frozenset(p.b for p in self.pairs)

    def client_plugins(self) -> list[ClientPlugin]:
        initial = {n: self.initial_state[n] for n in self.personal_names}
        return [PersonalTensors(initial), *super().client_plugins()]


STRATEGIES.register("fedsa_lora")(
    StrategySpec(lambda s, per_round, _model: FedSALora(per_round, s.server_lr), FedSALoraStrategy)
)
