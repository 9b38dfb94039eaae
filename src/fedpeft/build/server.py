"""The server strategy of a run, inside the wrappers its config asks for, initialised and ready.

Wrapping order, innermost first: the strategy; ``NormBound`` (robustness.norm_bound); ``RobustAggregation``
(robustness.aggregator); ``ClientLevelDP`` (privacy.client_dp), outermost, so it clips what arrives before
anything else sees it and noises everything the round's clients released.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from fedpeft.build.workload import Setup
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError
from fedpeft.fleet.profiles import ClientProfile, assign_profiles
from fedpeft.model.state import TensorDict
from fedpeft.privacy.accounting import calibrate, default_delta
from fedpeft.strategy import STRATEGIES, Strategy
from fedpeft.strategy.robust import make_aggregator
from fedpeft.wrappers.client_dp import ClientLevelDP
from fedpeft.wrappers.robust import NormBound, RobustAggregation


def build_strategy(
    cfg: RunConfig, model: nn.Module, initial: TensorDict, num_clients: int, ranks: Mapping[str, int] | None = None
) -> Strategy:
    """The configured strategy, started from ``initial`` (the model's trainable tensors), wrapped.

    Example:
        >>> strategy = build_strategy(cfg, setup.model, setup.trainable.snapshot(), 100)  # doctest: +SKIP
    """
    spec = STRATEGIES.get(cfg.strategy.name)
    if ranks and not spec.config.mixed_ranks:
        mixed = ", ".join(n for n in STRATEGIES.names() if STRATEGIES.get(n).config.mixed_ranks)
        raise ConfigError(
            f"strategy.name={cfg.strategy.name} cannot serve clients of mixed LoRA ranks: drop "
            f"resources.rank_tiers or pick {mixed}"
        )
    strategy = spec.build(cfg.strategy, cfg.clients.per_round, model)
    p = cfg.participation
    strategy.initialize(
        initial, ranks, num_clients=num_clients, keep_past=p.max_staleness if p.stragglers == "stale" else 0
    )
    robust = cfg.robustness
    if robust.norm_bound is not None:
        strategy = NormBound(strategy, robust.norm_bound)
    if robust.aggregator != "mean":
        rule = make_aggregator(
            robust.aggregator, trim_fraction=robust.trim_fraction, byzantine=robust.byzantine, m=robust.multi_krum
        )
        strategy = RobustAggregation(strategy, rule)
    if cfg.privacy.client_dp != "off":
        strategy = client_dp(cfg, strategy, num_clients)
    return strategy


def build_server(setup: Setup) -> tuple[Strategy, dict[str, ClientProfile]]:
    """The clients' resources (drawn once, seeded) and the strategy built for them (their LoRA ranks).

    Example:
        >>> strategy, profiles = build_server(build_setup(cfg))  # doctest: +SKIP
    """
    cfg, ids = setup.cfg, list(setup.client_data)
    profiles = assign_profiles(ids, cfg.resources, cfg.seed)
    ranks = {c: p.rank for c, p in profiles.items() if p.rank is not None}
    return build_strategy(cfg, setup.model, setup.trainable.snapshot(), len(ids), ranks), profiles


def client_dp(cfg: RunConfig, strategy: Strategy, num_clients: int) -> ClientLevelDP:
    """DP-FedAvg around ``strategy``, with the noise calibrated to a target epsilon if asked."""
    p = cfg.privacy
    delta = p.delta if p.delta is not None else default_delta(num_clients)
    if delta >= 1 / num_clients:
        raise ConfigError(
            f"privacy.delta={delta:g} is at least 1/{num_clients} (one over the number of clients): such a "
            f"delta allows releasing one client's data outright; use at most {default_delta(num_clients):.1e} "
            "or leave privacy.delta unset"
        )
    rate = min(cfg.clients.per_round, num_clients) / num_clients
    sampling = p.sampling if p.client_dp == "central" else "none"
    z = p.noise_multiplier
    if z is None:
        assert p.target_epsilon is not None
        z = calibrate(p.target_epsilon, delta, rate, cfg.rounds, sampling, num_clients)
    return ClientLevelDP(
        strategy,
        clip=p.clip,
        noise_multiplier=z,
        mode=p.client_dp,
        num_clients=num_clients,
        delta=delta,
        sampling=p.sampling,
        adaptive=p.adaptive_clip,
        target_quantile=p.target_quantile,
        clip_lr=p.clip_lr,
        seed=cfg.seed,
        secret_noise=p.secret_noise,
    )
