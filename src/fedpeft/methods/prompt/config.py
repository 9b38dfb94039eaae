"""The ``peft`` section of prompt, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class PromptTuningMethod(MethodConfig):
    """Soft prompt tuning (Lester et al., 2021) through peft: trained virtual token embeddings."""

    method: Literal["prompt"] = "prompt"
    num_virtual_tokens: int = Field(20, ge=1)
    init: Literal["random", "sample_vocab"] = Field(
        "sample_vocab", description="start from random vectors or from embeddings of random vocabulary tokens"
    )
