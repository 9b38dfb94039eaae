"""A run's engine with the parts the loop reports on, built in one place from a built setup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedpeft.build import build_client, build_fleet, build_server, secure_settings
from fedpeft.build.workload import Setup
from fedpeft.client import FederatedClient
from fedpeft.fleet import ClientProfile, Fleet, InProcessSecAgg
from fedpeft.fleet.secure_round import SecureAggregation
from fedpeft.model.state import TensorDict
from fedpeft.runtime import RoundOutcome, Simulator
from fedpeft.strategy import Strategy

FleetFactory = Callable[[Sequence[str]], Fleet]  # client ids -> what delivers their work (Flower's, deployed)


@dataclass(frozen=True)
class Simulation:
    """The round engine and what the run reports on: the client (its mods, pipelines, DP-SGD) and the
    clients' simulated resources.

    Example:
        >>> sim = make_simulator(build_setup(cfg), Path("runs/x/client_state"))  # doctest: +SKIP
        >>> sim.run_round(1).accepted  # doctest: +SKIP
    """

    engine: Simulator
    client: FederatedClient
    profiles: dict[str, ClientProfile] = field(default_factory=dict)

    @property
    def strategy(self) -> Strategy:
        return self.engine.strategy

    @property
    def global_state(self) -> TensorDict:
        return self.engine.global_state

    @property
    def client_ids(self) -> list[str]:
        return self.engine.client_ids

    @property
    def secure(self) -> SecureAggregation | None:
        return self.engine.secure

    @property
    def secured_by_fleet(self) -> bool:
        """Secure aggregation is on and the deployment's fleet runs its own protocol (Flower's SecAgg+)."""
        return self.engine.secure_protocol not in (None, InProcessSecAgg.protocol)

    def run_round(self, round_: int, on_client: Callable[[str], None] | None = None) -> RoundOutcome:
        return self.engine.run_round(round_, on_client)


def make_simulator(setup: Setup, state_dir: Path, fleet: FleetFactory | None = None) -> Simulation:
    """The configured strategy (wrapped), client, fleet and engine for a built setup; clients keep their own
    state (optimiser moments, personal tensors) under ``state_dir``. ``fleet`` makes what delivers the rounds'
    work from the client ids (Flower's, in a deployment); by default the clients train in this process, with
    simulated participation and fedpeft's own secure aggregation."""
    cfg = setup.cfg
    ids = list(setup.client_data)
    strategy, profiles = build_server(setup)
    client = build_client(cfg, setup, strategy, state_dir)
    engine = Simulator(
        strategy,
        build_fleet(cfg, client, profiles) if fleet is None else fleet(ids),
        ids,
        seed=cfg.seed,
        uplink=client.uplink,
        downlink=client.downlink,
        num_examples={c: len(d) for c, d in setup.client_data.items()},
        min_updates=cfg.strategy.min_updates,
        max_update_norm=cfg.robustness.max_update_norm,
        secure=secure_settings(cfg),
    )
    return Simulation(engine, client, profiles)
