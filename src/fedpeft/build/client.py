"""fedpeft's client for a run: local training, the client mods in their one order, the update pipelines.

The order of everything a client does to its update, after local training:
1. the strategy's client half (proximal term, control variates, rank mask, personal tensors...), which may
   add tensors to the update (SCAFFOLD's control-variate changes);
2. ``ClipAndNoise`` (client-level DP): clip the whole update, add local noise in local mode;
3. ``Attack`` (simulated malicious clients, benchmarks only): tamper with the update;
4. the uplink pipeline (``compression.uplink``): encode, in the configured order, with error feedback;
5. masking, when secure aggregation is on: done by the fleet on the encoded-and-decoded update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedpeft.build.workload import Setup
from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
from fedpeft.client.cohort import CohortTrainer
from fedpeft.client.plugins import ClientPlugin
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError
from fedpeft.model.device import on_device
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.privacy.accounting import default_delta
from fedpeft.privacy.dp_sgd import SampleLevelDP
from fedpeft.strategy import Strategy
from fedpeft.wrappers.attack import Attack, choose_attackers
from fedpeft.wrappers.client_dp import ClientLevelDP, ClipAndNoise
from fedpeft.wrappers.strategy import find_layer

log = logging.getLogger("fedpeft")


def client_mods(cfg: RunConfig, strategy: Strategy, client_ids: Sequence[str]) -> list[ClientPlugin]:
    """Steps 1-3 of the module's order: what runs inside every client's fit, in order."""
    mods = strategy.client_plugins()
    dp = find_layer(strategy, ClientLevelDP)
    if dp is not None:
        local = dp.noise_multiplier if dp.mode == "local" else 0.0
        mods.append(ClipAndNoise(local, seed=cfg.seed, secret=cfg.privacy.secret_noise))
    if cfg.attack.kind != "none":
        a = cfg.attack
        mods.append(
            Attack(
                a.kind,
                choose_attackers(list(client_ids), a.fraction, cfg.seed),
                scale=a.scale,
                noise_std=a.noise_std,
                seed=cfg.seed,
            )
        )
    return mods


def build_client(
    cfg: RunConfig,
    setup: Setup,
    strategy: Strategy,
    state_dir: Path,
    client_ids: Sequence[str] | None = None,
    *,
    reopen: bool = False,
) -> FederatedClient:
    """The client for ``client_ids`` (default: all of the run's), keeping each client's own state (optimiser
    moments, personal tensors, residuals) under ``state_dir``; ``reopen`` keeps it all on disk (a Flower
    node, whose worker may restart).

    Example:
        >>> client = build_client(cfg, setup, strategy, Path("runs/x/client_state"))  # doctest: +SKIP
    """
    ids = list(setup.client_data) if client_ids is None else list(client_ids)
    if cfg.clients.loss != "cross_entropy" and setup.task == "causal_lm":
        raise ConfigError(
            f"clients.loss={cfg.clients.loss} shifts class logits by the client's label counts; a language "
            "model has no class labels: set clients.loss: cross_entropy"
        )
    compression = cfg.compression
    store = ClientStateStore(state_dir, max_bytes=0, reopen=True) if reopen else ClientStateStore(state_dir)
    trainer = LocalTrainer(setup.model, setup.trainable, cfg.clients, dp=dp_sgd(setup), precision=cfg.precision)
    client = FederatedClient(
        trainer,
        setup.trainable,
        {cid: setup.client_data[cid] for cid in ids},
        store,
        cfg.seed,
        plugins=client_mods(cfg, strategy, list(setup.client_data)),
        uplink=UpdatePipeline.from_config(compression.uplink, compression.feedback),
        downlink=UpdatePipeline.from_config(compression.downlink),
    )
    if cfg.clients.cohort > 1:
        client.cohort = CohortTrainer(trainer)  # checks here that the model can route its clients' tensors
    return client


def dp_sgd(setup: Setup) -> SampleLevelDP | None:
    """Sample-level DP-SGD for local training, with its per-example gradient path checked on a real batch."""
    cfg = setup.cfg
    d = cfg.privacy.dp_sgd
    if not d.enabled:
        return None
    dp = SampleLevelDP(
        max_grad_norm=d.max_grad_norm,
        noise_multiplier=d.noise_multiplier,
        target_epsilon=d.target_epsilon,
        delta=d.delta,
        rounds=cfg.rounds,
        secret_noise=cfg.privacy.secret_noise,
    )
    data = max(setup.client_data.values(), key=len)
    if len(data) < 2:
        raise ConfigError("privacy.dp_sgd: every client holds a single example; DP-SGD needs local batches")
    if d.delta >= 1 / len(data):
        raise ConfigError(
            f"privacy.dp_sgd.delta={d.delta:g} is at least 1/{len(data)} (one over the largest client's examples): "
            f"such a delta allows releasing one example outright; use at most {default_delta(len(data)):.1e}"
        )
    dp.prepare(setup.model, setup.trainable.params, on_device(data.batch(np.arange(min(4, len(data)))), setup.device))
    log.info("DP-SGD per-example gradients: %s", dp.path)
    return dp
