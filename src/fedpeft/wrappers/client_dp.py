"""Client-level DP-FedAvg (McMahan et al., 2018): every update is clipped to an L2 norm C, the server takes
the unweighted mean, and Gaussian noise of standard deviation z C is added to the sum, centrally (by the
server, after decoding) or locally (by each client, before encoding).

The update is everything a client releases: the model tensors and any strategy state it sends beside them
(SCAFFOLD's control-variate changes). Clipping, the mean and the noise act on all of it together, so the
sensitivity the noise is scaled to covers every released tensor.

Order on a client: train, the strategy's client half, clip, (local) noise, then the update pipeline
encodes. Clipping must come first: it is what bounds one client's influence. Noise comes before any
compression, so compression is post-processing and costs no privacy; compressing first and adding noise
after would let the compressor's data-dependent choices (which entries top-k keeps) leak unprotected.
The server clips again on receipt, so a client that skips clipping cannot raise the sensitivity.

Adaptive clipping (Andrew et al., 2021): clients also report whether their norm was at most C; the server
moves C towards the ``target_quantile`` of norms geometrically, C <- C exp(-lr (b - q)), from a noised count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch

from fedpeft.client.app import client_seed
from fedpeft.client.plugins import ClientPlugin, FitContext, Scalar
from fedpeft.model.state import TensorDict
from fedpeft.privacy.accounting import PrivacyLedger
from fedpeft.privacy.noise import gaussian
from fedpeft.strategy.base import ClientUpdate, Strategy, bound_norm, update_norm
from fedpeft.wrappers.strategy import StrategyWrapper, combined

CLIP_KEY = "dp_clip"
BELOW_KEY = "dp_below_clip"


class ClipAndNoise(ClientPlugin):
    """The client's half: clip the whole update to the clip norm it was sent, report whether it was below
    it, and (local mode) add N(0, (z C)^2) to every coordinate.

    Example:
        >>> ctx = FitContext(1, "c0", {CLIP_KEY: 1.0}, {}, {}, {}, lr=0.1); ctx.update = {"w": torch.tensor([3.0, 4.0])}
        >>> ClipAndNoise(local_noise=0.0).finish(ctx); ctx.update["w"].tolist(), ctx.metrics[BELOW_KEY]
        ([0.6000000238418579, 0.800000011920929], 0.0)
    """

    def __init__(self, local_noise: float, seed: int = 0) -> None:
        self.local_noise, self.seed = local_noise, seed

    def finish(self, ctx: FitContext) -> None:
        clip = float(ctx.config[CLIP_KEY])
        ctx.metrics[BELOW_KEY] = float(update_norm(ctx.update) <= clip)
        ctx.update = bound_norm(ctx.update, clip)
        if self.local_noise > 0:
            base = [*client_seed(self.seed, ctx.round, ctx.client_id), 0xD9]
            ctx.update = {
                n: t + gaussian(t.shape, self.local_noise * clip, [*base, i])
                for i, (n, t) in enumerate(sorted(ctx.update.items()))
            }


class ClientLevelDP(StrategyWrapper):
    """The server's half, wrapped around a strategy: clip on receipt, unweighted mean of every released
    tensor, central noise, adaptive clip norm, and the (epsilon, delta) ledger. The wrapped strategy sees one
    update per round: the noised mean, standing for all the round's clients.

    Example:
        >>> from fedpeft.strategy import FedAvg
        >>> s = FedAvg(per_round=2); s.initialize({"w": torch.zeros(2)})
        >>> dp = ClientLevelDP(s, clip=1.0, noise_multiplier=0.0, mode="central", sample_rate=0.5, delta=1e-5)
        >>> ups = [ClientUpdate(c, {"w": torch.tensor([3.0, 4.0])}, n) for c, n in (("a", 1), ("b", 99))]
        >>> dp.aggregate_train(1, [dp.receive(u) for u in ups]); dp.global_state["w"].tolist()
        [0.6000000238418579, 0.800000011920929]
    """

    STATE = ("clip", "participations", "_draws", "accounting")  # what a round checkpoint saves

    def __init__(
        self,
        strategy: Strategy,
        *,
        clip: float,
        noise_multiplier: float,
        mode: str,
        sample_rate: float,
        delta: float,
        adaptive: bool = False,
        target_quantile: float = 0.5,
        clip_lr: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(strategy)
        self.mode, self.clip = mode, clip
        self.adaptive, self.target_quantile, self.clip_lr = adaptive, target_quantile, clip_lr
        self.sample_rate, self.seed = sample_rate, seed
        self.noise_multiplier = noise_multiplier
        self.ledger = PrivacyLedger(delta)
        self.participations: dict[str, int] = {}
        self._draws = 0  # noised means so far: each draws fresh, seeded noise

    @property
    def accounting(self) -> list[tuple[float, float, int]]:
        """The accountant's history: (noise multiplier, sample rate, steps) per release."""
        return list(self.ledger.accountant.history)

    @accounting.setter
    def accounting(self, history: list[list[float]]) -> None:
        self.ledger.accountant.history = [(float(z), float(q), int(s)) for z, q, s in history]

    def secure_weight(self, num_examples: int) -> float:
        return 1.0  # every client counts the same: weights would change the sensitivity

    def downlink(self, round_: int, client_id: str) -> tuple[TensorDict, dict[str, Scalar]]:
        tensors, config = self.inner.downlink(round_, client_id)
        return tensors, {CLIP_KEY: self.clip, **config}

    def receive(self, update: ClientUpdate) -> ClientUpdate:
        """Central mode re-clips on receipt (a client that skipped clipping must not raise the sensitivity).
        Local updates arrive noised on purpose: re-clipping would shrink the noise."""
        if self.mode == "central":
            update = replace(update, delta=bound_norm(update.delta, self.clip))
        return self.inner.receive(update)

    def aggregate_train(self, round_: int, updates: Sequence[ClientUpdate]) -> None:
        self.inner.aggregate_train(round_, [combined(updates, self.mean(updates), "dp-mean")])
        self.end_round(round_, updates)

    def update_noise(self, count: int) -> float:
        """The noise multiplier on the updates: with adaptive clipping part of the budget goes to the count
        of clients below C (noise std count/20), so z_update = (z^-2 - (2 sigma_b)^-2)^(-1/2)."""
        z = self.noise_multiplier
        if not self.adaptive or z == 0:
            return z
        sigma_b = max(count, 1) / 20
        rest = z**-2 - (2 * sigma_b) ** -2
        return math.inf if rest <= 0 else rest**-0.5

    def mean(self, updates: Sequence[ClientUpdate]) -> TensorDict:
        """sum_i delta_i / m over every tensor the clients released (each client counts the same), plus
        N(0, (z C / m)^2) per coordinate in central mode."""
        counts = [len(u.members) or 1 for u in updates]  # a securely aggregated update is its members' mean
        m = sum(counts)
        self._draws += 1
        out: TensorDict = {}
        for i, name in enumerate(sorted(updates[0].delta)):
            total = torch.stack([u.delta[name].float() * k for u, k in zip(updates, counts)]).sum(0)
            if self.mode == "central" and self.noise_multiplier > 0:
                z = self.update_noise(m)
                total = total + gaussian(total.shape, z * self.clip, [self.seed, self._draws, i, 0xC3])
            out[name] = total / m
        return out

    def end_round(self, round_: int, updates: Sequence[ClientUpdate]) -> None:
        for cid in [c for u in updates for c in (u.members or (u.client_id,))]:
            self.participations[cid] = self.participations.get(cid, 0) + 1
        if self.noise_multiplier > 0 and self.mode == "central":
            self.ledger.step(self.noise_multiplier, self.sample_rate)
        if self.adaptive and updates:
            below = sum(u.metrics.get(BELOW_KEY, 0.0) for u in updates)
            if self.noise_multiplier > 0:
                below += float(gaussian(torch.Size([]), len(updates) / 20, [self.seed, round_, 0xB1]))
            self.clip *= math.exp(-self.clip_lr * (below / len(updates) - self.target_quantile))

    @property
    def epsilon(self) -> float:
        """Central: the subsampled Gaussian mechanism over the rounds so far. Local: each update is a
        Gaussian release on its own (no amplification by the server's sampling, which the client cannot
        verify), composed over the most rounds any one client took part in."""
        if self.noise_multiplier == 0:
            return math.inf
        if self.mode == "central":
            return self.ledger.epsilon
        worst = max(self.participations.values(), default=0)
        local = PrivacyLedger(self.ledger.delta)
        for _ in range(worst):
            local.step(self.noise_multiplier, 1.0)
        return local.epsilon
