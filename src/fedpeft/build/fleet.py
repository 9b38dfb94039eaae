"""What delivers a simulated run's work to its clients: the clients in this process, with the configured
participation (dropouts, speeds, deadlines, stragglers) and, when asked, fedpeft's secure aggregation."""

from __future__ import annotations

from collections.abc import Mapping

from fedpeft.client import FederatedClient
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError
from fedpeft.fleet import ClientProfile, Fleet, InProcessSecAgg, LocalFleet, SecureAggregation, SimulatedParticipation
from fedpeft.fleet.cores import available_cores
from fedpeft.fleet.processes import ProcessFleet, default_workers


def secure_settings(cfg: RunConfig) -> SecureAggregation | None:
    """The secure aggregation settings the engine checks its fleet against (None when it is off)."""
    sa = cfg.privacy.secure_aggregation
    return SecureAggregation(threshold=sa.threshold, bound=sa.bound) if sa.enabled else None


def training_fleet(cfg: RunConfig, client: FederatedClient) -> Fleet:
    """Where the clients train: in this process, or in ``clients.workers`` forked processes that share the
    cores (``threads`` in all, split among them)."""
    device = client.trainer.device.type
    if cfg.clients.cohort > 1:
        return LocalFleet(client, cfg.clients.cohort)
    single = [p for p in client.plugins if p.changes_shared_model]  # e.g. FLoRA's merges into the base weights
    if single and (cfg.clients.workers or 1) > 1:
        raise ConfigError(
            f"clients.workers={cfg.clients.workers}: {type(single[0]).__name__} ({cfg.strategy.name}) writes to the "
            "shared model, which each worker would change on its own; set clients.workers: 1"
        )
    one = cfg.model.cache_frozen_prefix or bool(single)  # the cache, or merged weights, live in one process
    workers = cfg.clients.workers or (1 if one else default_workers(cfg.clients.per_round, device, cfg.threads))
    if workers == 1:
        return LocalFleet(client)
    if device != "cpu":
        raise ConfigError(
            f"clients.workers={workers}: worker processes share CPU cores; on {device} train one process "
            "(clients.workers: 1) and batch clients with clients.cohort"
        )
    threads = max(1, (cfg.threads or available_cores()) // workers)
    return ProcessFleet(client, workers, threads)


def build_fleet(cfg: RunConfig, client: FederatedClient, profiles: Mapping[str, ClientProfile]) -> Fleet:
    """``LocalFleet`` inside ``SimulatedParticipation``, inside ``InProcessSecAgg`` when secure aggregation is on.

    Example:
        >>> fleet = build_fleet(cfg, client, assign_profiles(ids, cfg.resources, cfg.seed))  # doctest: +SKIP
    """
    fleet: Fleet = SimulatedParticipation(training_fleet(cfg, client), dict(profiles), cfg.participation, seed=cfg.seed)
    if cfg.privacy.secure_aggregation.enabled:
        fleet = InProcessSecAgg(fleet, client.uplink)
    return fleet
