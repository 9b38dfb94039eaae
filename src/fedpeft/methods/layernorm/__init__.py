"""LayerNorm-only tuning: only normalisation layers' weights and biases train."""

from fedpeft.methods.layernorm.config import LayerNormMethod
from fedpeft.methods.layernorm.method import LAYERNORM

__all__ = ["LAYERNORM", "LayerNormMethod"]
