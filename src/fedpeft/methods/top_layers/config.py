"""The ``peft`` section of top_layers, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class TopLayersMethod(MethodConfig):
    """Top-k layers: the last ``k`` blocks of the body (and the task head) train; the rest stays frozen."""

    method: Literal["top_layers"] = "top_layers"
    k: int = Field(1, ge=1)
