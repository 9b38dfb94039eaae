"""The ``strategy`` section of fedopt, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FedOptStrategy(StrategySection):
    """FedAdam / FedYogi / FedAdagrad (Reddi et al., 2021): a server optimiser on the pseudo-gradient."""

    name: Literal["fedadam", "fedyogi", "fedadagrad"] = "fedadam"
    server_lr: float = Field(0.01, gt=0.0, description="server optimiser step size (eta)")
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.99, ge=0.0, lt=1.0)
    tau: float = Field(1e-3, gt=0.0, description="adaptivity floor added to sqrt(v)")
