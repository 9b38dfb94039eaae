"""One config class per server strategy, told apart by ``strategy.name`` (a discriminated union)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from fedpeft.config.section import Section


class _Common(Section):
    server_lr: float = Field(1.0, gt=0.0, description="step size applied to the aggregated update")
    min_updates: int = Field(1, ge=1, description="a round with fewer valid updates is recorded as failed")


class FedAvgStrategy(_Common):
    """FedAvg: the example-weighted mean of the clients' updates."""

    name: Literal["fedavg"] = "fedavg"


class FedProxStrategy(_Common):
    """FedProx: FedAvg plus a proximal term mu/2 ||w - w_global||^2 on the trainable tensors in local training."""

    name: Literal["fedprox"] = "fedprox"
    mu: float = Field(0.01, ge=0.0, description="proximal coefficient")


class FedAvgMStrategy(_Common):
    """FedAvgM: server momentum on the averaged update (v = beta v + delta; w += server_lr v)."""

    name: Literal["fedavgm"] = "fedavgm"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)


class FedOptStrategy(_Common):
    """FedAdam / FedYogi / FedAdagrad (Reddi et al., 2021): a server optimiser on the pseudo-gradient."""

    name: Literal["fedadam", "fedyogi", "fedadagrad"] = "fedadam"
    server_lr: float = Field(0.01, gt=0.0, description="server optimiser step size (eta)")
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.99, ge=0.0, lt=1.0)
    tau: float = Field(1e-3, gt=0.0, description="adaptivity floor added to sqrt(v)")


class ScaffoldStrategy(_Common):
    """SCAFFOLD (Karimireddy et al., 2020): server and per-client control variates correct client drift."""

    name: Literal["scaffold"] = "scaffold"


class FFALoraStrategy(_Common):
    """FFA-LoRA: LoRA's A stays frozen at its shared seeded init; only B trains and travels (exact mean)."""

    name: Literal["ffa_lora"] = "ffa_lora"


class FedSALoraStrategy(_Common):
    """FedSA-LoRA: A is shared and averaged; each client keeps its own B (a personalised adapter)."""

    name: Literal["fedsa_lora"] = "fedsa_lora"


class FLoraStrategy(_Common):
    """FLoRA: clients' factors are stacked, so the update is exactly sum_i w_i B_i A_i at any mix of ranks;
    it is merged into the base weights every round and the adapter restarts from its init."""

    name: Literal["flora"] = "flora"


class FlexLoraStrategy(_Common):
    """FlexLoRA: the server forms sum_i w_i B_i A_i and hands each client its best rank-r_i (SVD) approximation."""

    name: Literal["flexlora"] = "flexlora"


class HetLoraStrategy(_Common):
    """HetLoRA: zero-pad to the largest rank, weight clients by the norm of their update, truncate per client;
    optional local rank self-pruning."""

    name: Literal["hetlora"] = "hetlora"
    self_prune: bool = Field(False, description="clients regularise their top rank components and drop them")
    prune_gamma: float = Field(0.9, gt=0.0, lt=1.0, description="a pruning client keeps ceil(gamma * rank)")
    prune_lambda: float = Field(1e-3, ge=0.0, description="weight of the tail-norm regulariser")
    min_rank: int = Field(1, ge=1)


StrategyConfig = Annotated[
    Union[
        FedAvgStrategy, FedProxStrategy, FedAvgMStrategy, FedOptStrategy, ScaffoldStrategy, FFALoraStrategy,
        FedSALoraStrategy, FLoraStrategy, FlexLoraStrategy, HetLoraStrategy,
    ],
    Field(discriminator="name"),
]

LORA_AWARE = ("ffa_lora", "fedsa_lora", "flora", "flexlora", "hetlora")
