"""The ``peft`` section of vera, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class VeraMethod(MethodConfig):
    """VeRA: frozen shared random low-rank matrices (same seed on every client), trained scaling vectors."""

    method: Literal["vera"] = "vera"
    r: int = Field(256, ge=1)
    target_modules: list[str] | None = Field(None, description="layers must share one shape (e.g. query, value)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, validation_alias=AliasChoices("dropout", "vera_dropout"))
    d_initial: float = Field(0.1, gt=0.0)
