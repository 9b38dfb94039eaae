"""FedAvg (McMahan et al., 2017): the example-weighted mean of client deltas."""

from fedpeft.strategy.fedavg.config import FedAvgStrategy
from fedpeft.strategy.fedavg.server import FedAvg

__all__ = ["FedAvg", "FedAvgStrategy"]
