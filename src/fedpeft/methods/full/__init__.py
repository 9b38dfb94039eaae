"""Full fine-tuning: every parameter trains and travels. The baseline every comparison needs."""

from fedpeft.methods.full.config import FullMethod
from fedpeft.methods.full.method import FULL

__all__ = ["FULL", "FullMethod"]
