"""FedAdam / FedYogi / FedAdagrad (Reddi et al., 2021): adaptive server optimisers."""

from fedpeft.strategy.fedopt.config import FedOptStrategy
from fedpeft.strategy.fedopt.server import FedOpt

__all__ = ["FedOpt", "FedOptStrategy"]
