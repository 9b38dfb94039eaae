"""Server strategies, one module each, registered by name (``fedpeft strategies`` lists them)."""

from fedpeft.strategy import (  # noqa: F401  (registration)
    fedavg,
    fedprox,
    fedsa_lora,
    ffa_lora,
    flexlora,
    flora,
    hetlora,
    scaffold,
    server_opt,
)
from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, StrategySpec, sample_clients, weighted_mean
from fedpeft.strategy.fedavg import FedAvg
from fedpeft.strategy.fedprox import FedProx
from fedpeft.strategy.fedsa_lora import FedSALora
from fedpeft.strategy.ffa_lora import FFALora
from fedpeft.strategy.flexlora import FlexLora
from fedpeft.strategy.flora import FLora
from fedpeft.strategy.hetlora import HetLora
from fedpeft.strategy.scaffold import Scaffold
from fedpeft.strategy.server_opt import FedAvgM, FedOpt

__all__ = [
    "STRATEGIES", "ClientUpdate", "FFALora", "FLora", "FedAvg", "FedAvgM", "FedOpt", "FedProx", "FedSALora",
    "FlexLora", "HetLora", "Scaffold", "Strategy", "StrategySpec", "sample_clients", "weighted_mean",
]
