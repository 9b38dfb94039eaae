"""The ``strategy`` section of fedprox, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FedProxStrategy(StrategySection):
    """FedProx: FedAvg plus a proximal term mu/2 ||w - w_global||^2 on the trainable tensors in local training."""

    client_half: ClassVar[bool] = True

    name: Literal["fedprox"] = "fedprox"
    mu: float = Field(0.01, ge=0.0, description="proximal coefficient")
