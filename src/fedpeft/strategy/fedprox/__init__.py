"""FedProx (Li et al., 2020): FedAvg with a proximal term in every client's training."""

from fedpeft.strategy.fedprox.client import ProximalTerm
from fedpeft.strategy.fedprox.config import FedProxStrategy
from fedpeft.strategy.fedprox.server import FedProx

__all__ = ["FedProx", "FedProxStrategy", "ProximalTerm"]
