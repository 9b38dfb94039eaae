"""The ``strategy`` section of flexlora, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FlexLoraStrategy(StrategySection):
    """FlexLoRA: the server forms sum_i w_i B_i A_i and hands each client its best rank-r_i (SVD) approximation."""

    lora_only: ClassVar[bool] = True
    single_updates: ClassVar[bool] = True
    merges_products: ClassVar[bool] = True

    name: Literal["flexlora"] = "flexlora"
