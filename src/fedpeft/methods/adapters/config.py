"""The ``peft`` section of adapters, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class AdapterMethod(MethodConfig):
    """Bottleneck adapters: ``houlsby`` after the attention output and the feed-forward output of every
    block, ``pfeiffer`` after the feed-forward output only. Each is down-project, activation, up-project
    (initialised to zero, so training starts from the base model) and a residual connection."""

    method: Literal["houlsby", "pfeiffer"] = "houlsby"
    reduction_factor: int = Field(16, ge=1, description="bottleneck width = hidden size / reduction_factor")
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    target_modules: list[str] | None = Field(
        None, description="regexes matched against module names; None picks the architecture's default"
    )
