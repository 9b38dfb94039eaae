"""The ``strategy`` section of hetlora, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class HetLoraStrategy(StrategySection):
    """HetLoRA: zero-pad to the largest rank, weight clients by the norm of their update, truncate per client;
    optional local rank self-pruning."""

    lora_only: ClassVar[bool] = True
    single_updates: ClassVar[bool] = True
    client_half: ClassVar[bool] = True

    name: Literal["hetlora"] = "hetlora"
    self_prune: bool = Field(False, description="clients regularise their top rank components and drop them")
    prune_gamma: float = Field(0.9, gt=0.0, lt=1.0, description="a pruning client keeps ceil(gamma * rank)")
    prune_lambda: float = Field(1e-3, ge=0.0, description="weight of the tail-norm regulariser")
    min_rank: int = Field(1, ge=1)
