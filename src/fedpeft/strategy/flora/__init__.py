"""FLoRA (Wang et al., 2024): stacked factors, exact aggregation at mixed ranks."""

from fedpeft.strategy.flora.client import MergeReceived, merge_stack
from fedpeft.strategy.flora.config import FLoraStrategy
from fedpeft.strategy.flora.server import FLora, load_merged

__all__ = ["FLora", "FLoraStrategy", "MergeReceived", "load_merged", "merge_stack"]
