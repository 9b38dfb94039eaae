"""FlexLoRA: full-size aggregate, SVD back to each client's rank."""

from fedpeft.strategy.flexlora.config import FlexLoraStrategy
from fedpeft.strategy.flexlora.server import FlexLora

__all__ = ["FlexLora", "FlexLoraStrategy"]
