"""PEFT methods, one module each, registered by name with their family."""

from fedpeft.methods import (  # noqa: F401  (registration)
    adapters,
    bitfit,
    full,
    head,
    ia3,
    layernorm,
    lora,
    peft_library,
    prefix_tuning,
    prompt_tuning,
    sparse,
    top_layers,
    vera,
)
from fedpeft.methods.registry import METHODS, MethodSpec

__all__ = ["METHODS", "MethodSpec"]
