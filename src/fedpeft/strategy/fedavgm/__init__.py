"""FedAvgM (Hsu et al., 2019): server momentum."""

from fedpeft.strategy.fedavgm.config import FedAvgMStrategy
from fedpeft.strategy.fedavgm.server import FedAvgM

__all__ = ["FedAvgM", "FedAvgMStrategy"]
