"""The ``peft`` section of prefix, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class PrefixTuningMethod(MethodConfig):
    """Prefix tuning (Li and Liang, 2021) through peft: trained key/value prefixes in every layer."""

    method: Literal["prefix"] = "prefix"
    num_virtual_tokens: int = Field(20, ge=1)
    projection: bool = Field(False, description="reparameterise the prefix through a two-layer MLP")
    encoder_hidden_size: int | None = Field(None, ge=1, description="MLP width when projection is on")
