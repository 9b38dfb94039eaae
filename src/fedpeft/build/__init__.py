"""The build step: pure factories that turn a config into the objects a run needs, complete when made.

``build_setup`` (data, partition, model with its PEFT method, evaluator), ``build_strategy`` (the server
strategy inside its wrappers), ``build_client`` (local training with its ordered client mods and update
pipelines) and ``build_fleet`` (what delivers a round's work). The round loop (``fedpeft.recipe``) and every
runtime (the simulator, Flower's apps and node worker) build through these and nothing else.
"""

from fedpeft.build.client import build_client, client_mods
from fedpeft.build.fleet import build_fleet, secure_settings
from fedpeft.build.server import build_server, build_strategy
from fedpeft.build.workload import KINDS, Inputs, Setup, build_setup, configure_torch, model_inputs

__all__ = [
    "KINDS",
    "Inputs",
    "Setup",
    "build_client",
    "build_fleet",
    "build_server",
    "build_setup",
    "build_strategy",
    "client_mods",
    "configure_torch",
    "model_inputs",
    "secure_settings",
]
