"""PEFT methods, one module each, registered by name with their family."""

from fedpeft.methods import bitfit, full, head, ia3, layernorm, lora, vera  # noqa: F401  (registration)
from fedpeft.methods.registry import METHODS, MethodSpec

__all__ = ["METHODS", "MethodSpec"]
