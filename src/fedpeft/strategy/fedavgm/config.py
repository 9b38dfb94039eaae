"""The ``strategy`` section of fedavgm, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FedAvgMStrategy(StrategySection):
    """FedAvgM: server momentum on the averaged update (v = beta v + delta; w += server_lr v)."""

    name: Literal["fedavgm"] = "fedavgm"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
