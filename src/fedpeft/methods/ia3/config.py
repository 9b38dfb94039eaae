"""The ``peft`` section of ia3, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class IA3Method(MethodConfig):
    """(IA)^3: learned scaling vectors on keys, values and feed-forward activations, through peft."""

    method: Literal["ia3"] = "ia3"
    target_modules: list[str] | None = Field(None, description="None picks peft's default for the architecture")
    feedforward_modules: list[str] | None = None
