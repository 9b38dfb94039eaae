"""The ``strategy`` section of fedsa_lora, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FedSALoraStrategy(StrategySection):
    """FedSA-LoRA: A is shared and averaged; each client keeps its own B (a personalised adapter)."""

    lora_only: ClassVar[bool] = True
    keeps_b: ClassVar[bool] = True
    client_half: ClassVar[bool] = True

    name: Literal["fedsa_lora"] = "fedsa_lora"
