"""What delivers a simulated run's work to its clients: the clients in this process, with the configured
participation (dropouts, speeds, deadlines, stragglers) and, when asked, fedpeft's secure aggregation."""

from __future__ import annotations

from collections.abc import Mapping

from fedpeft.client import FederatedClient
from fedpeft.config.schema import RunConfig
from fedpeft.fleet import ClientProfile, Fleet, InProcessSecAgg, LocalFleet, SecureAggregation, SimulatedParticipation


def secure_settings(cfg: RunConfig) -> SecureAggregation | None:
    """The secure aggregation settings the engine checks its fleet against (None when it is off)."""
    sa = cfg.privacy.secure_aggregation
    return SecureAggregation(threshold=sa.threshold, bound=sa.bound) if sa.enabled else None


def build_fleet(cfg: RunConfig, client: FederatedClient, profiles: Mapping[str, ClientProfile]) -> Fleet:
    """``LocalFleet`` inside ``SimulatedParticipation``, inside ``InProcessSecAgg`` when secure aggregation is on.

    Example:
        >>> fleet = build_fleet(cfg, client, assign_profiles(ids, cfg.resources, cfg.seed))  # doctest: +SKIP
    """
    fleet: Fleet = SimulatedParticipation(LocalFleet(client), dict(profiles), cfg.participation, seed=cfg.seed)
    if cfg.privacy.secure_aggregation.enabled:
        fleet = InProcessSecAgg(fleet, client.uplink)
    return fleet
