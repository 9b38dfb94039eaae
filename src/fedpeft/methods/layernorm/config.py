"""The ``peft`` section of layernorm, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class LayerNormMethod(MethodConfig):
    """LayerNorm-only: only normalisation weights and biases (and the new task head) train."""

    method: Literal["layernorm"] = "layernorm"
