"""Server strategies, one folder each (``strategy/<name>/``: ``config.py`` with the ``strategy`` section's
class and its capability flags, ``server.py`` with the server half registered in ``STRATEGIES``, and
``client.py`` with the client half, if any), found by discovery: importing this package imports every
folder, and each registers itself (``fedpeft strategies`` lists them).
"""

import importlib
import pkgutil

from fedpeft.strategy.base import STRATEGIES, ClientUpdate, Strategy, StrategySpec, sample_clients, weighted_mean

for _info in pkgutil.iter_modules(__path__):  # sorted by name, so registration order is stable
    if _info.ispkg and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

from fedpeft.strategy.fedavg import FedAvg  # noqa: E402  (the built-ins, for convenience)
from fedpeft.strategy.fedavgm import FedAvgM  # noqa: E402
from fedpeft.strategy.fedopt import FedOpt  # noqa: E402
from fedpeft.strategy.fedprox import FedProx  # noqa: E402
from fedpeft.strategy.fedsa_lora import FedSALora  # noqa: E402
from fedpeft.strategy.ffa_lora import FFALora  # noqa: E402
from fedpeft.strategy.flexlora import FlexLora  # noqa: E402
from fedpeft.strategy.flora import FLora  # noqa: E402
from fedpeft.strategy.hetlora import HetLora  # noqa: E402
from fedpeft.strategy.scaffold import Scaffold  # noqa: E402

__all__ = [
    "STRATEGIES",
    "ClientUpdate",
    "FFALora",
    "FLora",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedProx",
    "FedSALora",
    "FlexLora",
    "HetLora",
    "Scaffold",
    "Strategy",
    "StrategySpec",
    "sample_clients",
    "weighted_mean",
]
