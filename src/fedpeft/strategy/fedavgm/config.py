"""The ``strategy`` section of fedavgm, registered under its ``name`` tag, with its capability flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.strategies import StrategySection


@STRATEGY_CONFIGS.add
class FedAvgMStrategy(StrategySection):
    """FedAvgM: server momentum on the averaged update (v = beta v + delta; w += server_lr v).

    The defaults (momentum 0.5, server lr 2: a long-run step of 4 averaged updates) are the one setting that
    served sentiment, chat and Hamlet (transformers + LoRA, AdamW clients) in ``benchmarks/heterogeneity.py`` /
    ``tasks.py`` (README, "Server learning rate"); the old 0.9 / 1 ends 3 points under centralised on sentiment.
    On the MobileNetV2 digits task every FedAvgM step tried is worse than FedAvg: use ``fedavg`` there.

    Example:
        >>> s = FedAvgMStrategy()
        >>> s.momentum, s.server_lr, s.server_lr / (1 - s.momentum)
        (0.5, 2.0, 4.0)
    """

    name: Literal["fedavgm"] = "fedavgm"
    momentum: float = Field(0.5, ge=0.0, lt=1.0)
    server_lr: float = Field(2.0, gt=0.0, description="step size applied to the velocity")
