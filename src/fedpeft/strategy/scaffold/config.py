"""The ``strategy`` section of scaffold, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class ScaffoldStrategy(StrategySection):
    """SCAFFOLD (Karimireddy et al., 2020): server and per-client control variates correct client drift."""

    mixed_ranks: ClassVar[bool] = False  # control variates are not defined across ranks
    secure_aggregation: ClassVar[bool] = False
    extra_state: ClassVar[bool] = True  # control-variate changes travel beside the model delta
    client_half: ClassVar[bool] = True

    name: Literal["scaffold"] = "scaffold"
