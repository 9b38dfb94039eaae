"""Flower's SecAgg+ for a round's updates, when privacy.secure_aggregation is on in a deployment.

The server runs Flower's SecAggPlusWorkflow for the round; the nodes answer through Flower's
``secaggplus_mod``, so the server only ever sees masked, quantised vectors and their weighted mean. A tiny
shim plays the legacy Strategy the workflow expects: it hands over the round's instructions and keeps the
mean. Each client's decoded update is what gets masked (as in the simulator's own protocol), weighted by 1
under client-level DP and by its example count otherwise; every sampled client must sit on its own SuperNode.
The nodes' side is in ``fedpeft.apps.flower.train``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.common import FitIns, FitRes, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid

from fedpeft.client.messages import FitInstruction
from fedpeft.errors import ConfigError
from fedpeft.fleet.base import SecureResult


class _OneRound(Strategy):
    """The legacy Strategy face the SecAgg+ workflow talks to: this round's instructions in, the mean out."""

    def __init__(self, grid: Grid, fitins: Mapping[int, FitIns]) -> None:
        self.proxies: list[tuple[ClientProxy, FitIns]] = [
            (GridClientProxy(nid, grid, grid.run.run_id), ins) for nid, ins in fitins.items()
        ]
        self.results: list[tuple[ClientProxy, FitRes]] = []

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        return self.proxies

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> tuple[Parameters | None, dict[str, Any]]:
        self.results = list(results)
        return (self.results[0][1].parameters if self.results else None), {}

    def initialize_parameters(self, client_manager: ClientManager) -> None:
        return None

    def configure_evaluate(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> list[Any]:
        return []

    def aggregate_evaluate(self, server_round: int, results: Any, failures: Any) -> tuple[None, dict[str, Any]]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters) -> None:
        return None


def secure_round(
    grid: Grid,
    context: Context,
    node_of: Mapping[str, int],
    instructions: Sequence[FitInstruction],
    weights: Mapping[str, float],
    spec: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    config_json: str,
    *,
    bound: float,
    threshold: float,
    timeout: float,
) -> SecureResult:
    """One round through Flower's SecAgg+: send, mask, sum, unmask; the survivors' weighted mean."""
    nodes = [node_of[i.client_id] for i in instructions]
    if len(set(nodes)) < len(nodes):
        raise ConfigError(
            "secure aggregation on Flower masks one update per SuperNode, but this round sampled "
            "several clients on one node: set partition.num_clients to the number of SuperNodes"
        )
    fitins = {
        node_of[i.client_id]: FitIns(
            ndarrays_to_parameters([np.frombuffer(i.payload, dtype=np.uint8)]),
            {
                "round": i.round,
                "client_id": i.client_id,
                "config": json.dumps(i.config),
                "fedpeft_config": config_json,
                "weight": int(weights[i.client_id]),
            },
        )
        for i in instructions
    }
    shim = _OneRound(grid, fitins)
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=1), strategy=shim)
    legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: instructions[0].round})
    legacy.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
    workflow = SecAggPlusWorkflow(
        num_shares=1.0,
        reconstruction_threshold=threshold,
        clipping_range=bound,
        max_weight=max(weights.values()),
        timeout=timeout,
    )
    workflow(grid, legacy)
    client_of = {node_of[i.client_id]: i.client_id for i in instructions}  # (this round's client on each node)
    accepted = [client_of[p.node_id] for p, _ in shim.results if p.node_id in client_of]
    metrics = {
        client_of[p.node_id]: {k: float(v) for k, v in r.metrics.items() if isinstance(v, (int, float))}
        for p, r in shim.results
        if p.node_id in client_of
    }
    if not shim.results:
        return SecureResult(None, accepted, metrics)
    arrays = parameters_to_ndarrays(shim.results[0][1].parameters)
    mean = {
        name: torch.from_numpy(np.asarray(a, dtype=np.float64).reshape(shape)).to(dtype)
        for (name, (shape, dtype)), a in zip(sorted(spec.items()), arrays)
    }
    return SecureResult(mean, accepted, metrics)
