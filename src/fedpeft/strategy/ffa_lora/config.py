"""The ``strategy`` section of ffa_lora, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FFALoraStrategy(StrategySection):
    """FFA-LoRA: LoRA's A stays frozen at its shared seeded init; only B trains and travels (exact mean)."""

    lora_only: ClassVar[bool] = True

    name: Literal["ffa_lora"] = "ffa_lora"
