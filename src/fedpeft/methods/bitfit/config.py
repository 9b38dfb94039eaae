"""The ``peft`` section of bitfit, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class BitFitMethod(MethodConfig):
    """BitFit: only the bias terms (and the new task head) train."""

    method: Literal["bitfit"] = "bitfit"
