"""Server strategies, one module each, registered by name."""

from fedpeft.strategy import fedavg  # noqa: F401  (registration)
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, sample_clients
from fedpeft.strategy.fedavg import FedAvg, weighted_mean

__all__ = ["STRATEGIES", "ClientUpdate", "FedAvg", "Strategy", "sample_clients", "weighted_mean"]
