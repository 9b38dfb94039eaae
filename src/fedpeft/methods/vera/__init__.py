"""VeRA (Kopiczko et al., 2024) through peft. The random projections come from a fixed PRNG key, so every
client holds the same frozen matrices and only the scaling vectors (and the head) travel."""

from fedpeft.methods.vera.config import VeraMethod
from fedpeft.methods.vera.method import VERA

__all__ = ["VERA", "VeraMethod"]
