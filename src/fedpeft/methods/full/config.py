"""The ``peft`` section of full, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class FullMethod(MethodConfig):
    """Full fine-tuning: every parameter trains and travels. The baseline for comparisons."""

    method: Literal["full"] = "full"
