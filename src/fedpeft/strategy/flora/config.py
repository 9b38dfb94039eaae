"""The ``strategy`` section of flora, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FLoraStrategy(StrategySection):
    """FLoRA: clients' factors are stacked, so the update is exactly sum_i w_i B_i A_i at any mix of ranks;
    it is merged into the base weights every round and the adapter restarts from its init."""

    lora_only: ClassVar[bool] = True
    single_updates: ClassVar[bool] = True
    merges_products: ClassVar[bool] = True
    client_half: ClassVar[bool] = True

    name: Literal["flora"] = "flora"
