"""HetLoRA (Cho et al., 2024): zero-pad, norm-weighted, truncate; optional rank self-pruning."""

from fedpeft.strategy.hetlora.client import RankSelfPruning
from fedpeft.strategy.hetlora.config import HetLoraStrategy
from fedpeft.strategy.hetlora.server import HetLora

__all__ = ["HetLora", "HetLoraStrategy", "RankSelfPruning"]
