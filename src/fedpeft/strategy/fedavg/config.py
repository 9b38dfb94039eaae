"""The ``strategy`` section of fedavg, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import Literal

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FedAvgStrategy(StrategySection):
    """FedAvg: the example-weighted mean of the clients' updates."""

    name: Literal["fedavg"] = "fedavg"
