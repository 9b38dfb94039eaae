"""FLoRA (Wang et al., 2024): stack the clients' factors so the aggregate is exact at any mix of ranks.

With A = [A_1; ...; A_k] and B = [w_1 B_1, ..., w_k B_k], B A = sum_i w_i B_i A_i exactly. The stacked product
is merged into the frozen base weights every round and the adapter restarts from its (shared, seeded) init.
A client receives the stacks of every round since it last took part, or the merged layers themselves when
they are smaller. In the simulator one model stands for every client's copy: the server merges into it once,
and a client finds its copy already at the current version (a deployed client merges what it receives).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fedpeft.client.plugins import ClientPlugin, Scalar
from fedpeft.model.lora_factors import factor_names
from fedpeft.model.state import TensorDict, nbytes
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, StrategySpec
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.flora.client import MERGED_FILE, STACK, WEIGHTS, MergeReceived, _layer, _version, merge_stack
from fedpeft.strategy.flora.config import FLoraStrategy


class FLora(FedAvg):
    """Stacking aggregation, merged into the base each round; other trainable tensors are averaged.

    Example:
        >>> FLora(per_round=10, model=None).version
        0
    """

    STATE = (*FedAvg.STATE, "version", "history", "synced", "merged")

    def __init__(self, per_round: int, model: nn.Module | None, server_lr: float = 1.0) -> None:
        super().__init__(per_round, server_lr)
        self.model = model
        self.version = 0
        self.history: list[TensorDict] = []  # the stack of each merged round
        self.synced: dict[str, int] = {}  # the version each client's copy is at

    @property
    def merged(self) -> dict[str, object]:
        """The (shared) model's base weights with every stack merged so far, and their version."""
        if self.model is None:
            return {}
        weights = {p.module: _layer(self.model, p.module).get_base_layer().weight for p in self.pairs}
        return {"version": _version(self.model), "weights": weights}

    @merged.setter
    @torch.no_grad()
    def merged(self, value: dict[str, object]) -> None:
        if self.model is None or not value:
            return
        weights = value["weights"]
        assert isinstance(weights, dict)
        for p in self.pairs:
            _layer(self.model, p.module).get_base_layer().weight.copy_(weights[p.module])
        self.model._flora_version = value["version"]  # type: ignore[assignment]

    def downlink(self, round_: int, client_id: str) -> tuple[TensorDict, dict[str, Scalar]]:
        tensors, config = super().downlink(round_, client_id)
        since = self.synced.get(client_id, 0)
        extra = {f"{STACK}{v + 1}/{n}": t for v in range(since, self.version) for n, t in self.history[v].items()}
        if self.model is not None and nbytes(extra) > self._merged_bytes():
            extra = {
                WEIGHTS + p.module: _layer(self.model, p.module).get_base_layer().weight.detach().cpu()
                for p in self.pairs
            }
        self.synced[client_id] = self.version
        config["flora_version"] = self.version
        return {**tensors, **extra}, config

    def _merged_bytes(self) -> int:
        assert self.model is not None
        return nbytes({p.module: _layer(self.model, p.module).get_base_layer().weight for p in self.pairs})

    def stacked(self, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        """Each pair's stacked factors: A_i = A_init + dA_i and w_i B_i, over each client's own rank."""
        total = float(sum(u.weight for u in updates))
        out: TensorDict = {}
        for p in self.pairs:
            a_parts, b_parts = [], []
            for u in updates:
                r = self.update_rank(u)
                a_parts.append((self.initial_state[p.a].float() + u.delta[p.a].float())[:r])
                b = self.initial_state[p.b].float() + u.delta[p.b].float()
                b_parts.append(b[:, :r] * (self.server_lr * u.weight / total))
            out[p.a], out[p.b] = torch.cat(a_parts, 0), torch.cat(b_parts, 1)
        return out

    streams = False  # needs every client's factors, stacked: the updates are kept until the round ends

    def aggregate(self, round_: int, state: TensorDict, updates: Sequence[ClientUpdate]) -> TensorDict:
        new = self.step_non_factors(state, updates)
        stack = self.stacked(state, updates)
        self.history.append(stack)
        self.version += 1
        if self.model is not None:
            merge_stack(self.model, self.pairs, stack, self.version)
        factors = factor_names(self.pairs)
        return {n: self.initial_state[n].clone() if n in factors else t for n, t in new.items()}

    def client_plugins(self) -> list[ClientPlugin]:
        assert self.model is not None, "FLoRA's clients merge into their model: build it with the model"
        return [MergeReceived(self.model, self.pairs), *super().client_plugins()]

    def export(self, folder: Path) -> list[str]:
        """The merged base weights of the adapted layers (the adapter itself is back at its init)."""
        assert self.model is not None
        save_file(
            {p.module: _layer(self.model, p.module).get_base_layer().weight.detach().contiguous() for p in self.pairs},
            str(folder / MERGED_FILE),
        )
        return [MERGED_FILE]


@torch.no_grad()
def load_merged(model: nn.Module, folder: str | Path) -> nn.Module:
    """Put a FLoRA run's merged base weights into a model that has the run's adapter loaded."""
    for module, weight in load_file(str(Path(folder) / MERGED_FILE)).items():
        _layer(model, module).get_base_layer().weight.copy_(weight)
    return model


STRATEGIES.register("flora")(
    StrategySpec(lambda s, per_round, model: FLora(per_round, model, s.server_lr), FLoraStrategy)
)
