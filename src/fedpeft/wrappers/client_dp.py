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

import numpy as np
import torch

from fedpeft.client.app import client_seed
from fedpeft.client.plugins import ClientPlugin, FitContext, Scalar
from fedpeft.errors import ConfigError
from fedpeft.model.state import TensorDict
from fedpeft.privacy.accounting import PrivacyLedger, Sampling
from fedpeft.privacy.noise import gaussian
from fedpeft.strategy.base import ClientUpdate, Strategy, bound_norm, update_norm
from fedpeft.wrappers.strategy import StrategyWrapper

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

    def __init__(self, local_noise: float, seed: int = 0, secret: bool = False) -> None:
        self.local_noise, self.seed, self.secret = local_noise, seed, secret

    def finish(self, ctx: FitContext) -> None:
        clip = float(ctx.config[CLIP_KEY])
        ctx.metrics[BELOW_KEY] = float(update_norm(ctx.update) <= clip)
        ctx.update = bound_norm(ctx.update, clip)
        if self.local_noise > 0:
            base = [*client_seed(self.seed, ctx.round, ctx.client_id), 0xD9]
            ctx.update = {
                n: t + gaussian(t.shape, self.local_noise * clip, [*base, i], self.secret).to(t.device)
                for i, (n, t) in enumerate(sorted(ctx.update.items()))
            }


class ClientLevelDP(StrategyWrapper):
    """The server's half, wrapped around a strategy: the client sampler, clip on receipt, the mean of every
    released tensor, central noise, adaptive clip norm, and the (epsilon, delta) ledger. The wrapped strategy
    sees one update per round: the noised mean, standing for all the round's clients.

    Central mode samples clients as its accountant assumes. ``poisson`` (the default): each of the N clients
    joins a round with probability q = per_round / N, rounds vary in size, and the sum is divided by the
    expected count q N, not the actual one (which would reveal it); a round is released even if no client
    joined it (noise only). ``fixed``: exactly ``per_round`` clients without replacement, accounted under
    replace-one adjacency (sensitivity 2C). Local mode keeps the strategy's own sampler: each client's noised
    update is private on its own, under replace-one adjacency.

    Example:
        >>> from fedpeft.strategy import FedAvg
        >>> s = FedAvg(per_round=2); s.initialize({"w": torch.zeros(2)})
        >>> dp = ClientLevelDP(s, clip=1.0, noise_multiplier=0.0, mode="central", num_clients=4, delta=1e-5)
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
        num_clients: int,
        delta: float,
        sampling: Sampling = "poisson",
        adaptive: bool = False,
        target_quantile: float = 0.5,
        clip_lr: float = 0.2,
        seed: int = 0,
        secret_noise: bool = False,
    ) -> None:
        super().__init__(strategy)
        self.mode, self.clip = mode, clip
        self.adaptive, self.target_quantile, self.clip_lr = adaptive, target_quantile, clip_lr
        self.num_clients, self.seed, self.secret_noise = num_clients, seed, secret_noise
        self.per_round = min(strategy.per_round, num_clients)
        self.sample_rate = self.per_round / num_clients
        self.noise_multiplier = noise_multiplier
        self.sampling: Sampling = sampling if mode == "central" else "none"
        self.ledger = PrivacyLedger(delta, self.sampling, num_clients)
        self.participations: dict[str, int] = {}
        self._draws = 0  # noised means so far: each draws fresh, seeded noise
        if math.isinf(self.update_noise(self.per_round)):
            raise ConfigError(
                f"privacy.adaptive_clip: counting clients below the clip (noise std per_round/20 = "
                f"{self.per_round / 20:g}) would take the whole budget of noise multiplier {noise_multiplier:.3g}: "
                f"raise clients.per_round above {10 * noise_multiplier:.0f}, allow more epsilon, or use a fixed clip"
            )

    @property
    def accounting(self) -> list[tuple[float, float, int]]:
        """The central accountant's history: (noise multiplier, sample rate, rounds) per kind of release."""
        return list(self.ledger.history)

    @accounting.setter
    def accounting(self, history: list[list[float]]) -> None:
        self.ledger.history = [(float(z), float(q), int(s)) for z, q, s in history]

    @property
    def releases_every_round(self) -> bool:
        return self.mode == "central"

    def describe(self) -> str:
        """How clients were sampled, as the accountant assumes it, in words."""
        if self.mode == "local":
            return "each client noises its own update (no amplification by sampling is claimed)"
        if self.sampling == "poisson":
            return (
                f"Poisson, each of the {self.num_clients:,} clients joining a round with probability "
                f"q = {self.sample_rate:.3g} (about {self.per_round:,} a round)"
            )
        return f"exactly {self.per_round:,} of the {self.num_clients:,} clients a round, drawn without replacement"

    def configure_train(self, round_: int, client_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Central: the sampler the accountant assumes. Every sampled client counts as taking part (local DP
        composes over it: a client's noised update is released when sent, whatever the server does with it)."""
        if self.sampling != "poisson":
            sampled = self.inner.configure_train(round_, client_ids, rng)
        else:
            joins = rng.random(len(client_ids)) < self.sample_rate
            sampled = [c for c, j in zip(client_ids, joins) if j]
        for cid in sampled:
            self.participations[cid] = self.participations.get(cid, 0) + 1
        return sampled

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

    def accumulator(self, round_: int) -> DPSum:
        return DPSum(self, round_)  # the clipped updates are summed as they arrive

    def aggregate_train(self, round_: int, updates: Sequence[ClientUpdate]) -> None:
        fold = self.accumulator(round_)
        for u in updates:
            fold.add(u)
        fold.finish()

    def release(self, round_: int, fold: DPSum) -> None:
        """The round's noised mean to the wrapped strategy, then the accountant's and the clip's step."""
        if not fold.count and self.mode == "local":
            return
        mean = ClientUpdate("dp-mean", self.noised_mean(fold), 1, members=tuple(fold.members))
        if self.mode == "central":  # it stands for the expected cohort: the actual size stays hidden
            mean = replace(mean, stands_for=self.per_round)
        self.inner.aggregate_train(round_, [mean])
        self.end_round(round_, fold.below)

    def update_noise(self, count: float) -> float:
        """The noise multiplier on the updates: with adaptive clipping part of the budget goes to the count
        of clients below C (noise std count/20), so z_update = (z^-2 - (2 sigma_b)^-2)^(-1/2) (Andrew et al.
        2021, Section 3.2; it holds for both samplers because the bits are centred)."""
        z = self.noise_multiplier
        if not self.adaptive or z == 0:
            return z
        sigma_b = max(count, 1) / 20
        rest = z**-2 - (2 * sigma_b) ** -2
        return math.inf if rest <= 0 else rest**-0.5

    def mean(self, updates: Sequence[ClientUpdate]) -> TensorDict:
        """The noised mean of ``updates`` as a round would release it (one fresh draw of noise)."""
        fold = DPSum(self, 0)
        for u in updates:
            fold.add(u)
        return self.noised_mean(fold)

    def noised_mean(self, fold: DPSum) -> TensorDict:
        """sum_i delta_i over every tensor the clients released (each client counts the same), plus
        N(0, (z C)^2) per coordinate in central mode, over the expected count ``per_round`` (central) or the
        actual count (local: the noise is in each update already)."""
        central = self.mode == "central"
        m = self.per_round if central else fold.count
        self._draws += 1
        released = fold.spec or {n: (shape, torch.float32) for n, (shape, _) in self.inner.uplink_spec("", {}).items()}
        out: TensorDict = {}
        for i, (name, (shape, dtype)) in enumerate(sorted(released.items())):  # (a round nobody joined: zeros)
            total = fold.sums.get(name, torch.zeros(shape, dtype=torch.float32))
            if central and self.noise_multiplier > 0:
                z = self.update_noise(m)
                total = total + gaussian(
                    total.shape, z * self.clip, [self.seed, self._draws, i, 0xC3], self.secret_noise
                )
            out[name] = total.to(dtype) / m
        return out

    def end_round(self, round_: int, below: float) -> None:
        """``below``: the round's centred bits, sum_i (b_i - 1/2), b_i = 1 when client i was under the clip."""
        if self.noise_multiplier > 0 and self.mode == "central":
            self.ledger.step(self.noise_multiplier, self.sample_rate)
        if self.adaptive:  # centred bits (b - 1/2): one client moves the sum by 1/2 (add/remove) or 1 (replace)
            if self.noise_multiplier > 0:
                below += float(
                    gaussian(torch.Size([]), self.per_round / 20, [self.seed, round_, 0xB1], self.secret_noise)
                )
            share = below / self.per_round + 0.5  # over the expected count, like the updates
            self.clip *= math.exp(-self.clip_lr * (share - self.target_quantile))

    @property
    def epsilon(self) -> float:
        """Central: the subsampled Gaussian mechanism over the rounds so far, for the sampler used. Local: each
        update is a Gaussian release on its own (no amplification by the server's sampling, which the client
        cannot verify), composed over the most rounds any one client took part in."""
        if self.noise_multiplier == 0:
            return math.inf
        if self.mode == "central":
            return self.ledger.epsilon
        worst = max(self.participations.values(), default=0)
        local = PrivacyLedger(self.ledger.delta, "none")
        if worst:
            local.step(self.noise_multiplier, 1.0, worst)
        return local.epsilon


class DPSum:
    """Client-level DP's sum, folded as the clipped updates arrive: sum_i k_i delta_i (k_i: the clients an
    update stands for, 1 unless secure aggregation combined them), their count, and the adaptive clip's
    centred bits; ``finish`` releases the noised mean. ``ClientLevelDP.accumulator`` makes one per round.
    """

    def __init__(self, dp: ClientLevelDP, round_: int) -> None:
        self.dp, self.round = dp, round_
        self.sums: TensorDict = {}
        self.spec: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self.count = 0
        self.members: list[str] = []
        self.below = 0.0

    def add(self, update: ClientUpdate) -> None:
        k = len(update.members) or 1  # a securely aggregated update is its members' mean
        if not self.spec:
            self.spec = {n: (tuple(t.shape), t.dtype) for n, t in update.delta.items()}
        for name in self.spec:
            acc = self.sums.setdefault(name, torch.zeros(self.spec[name][0], dtype=torch.float32))
            acc += update.delta[name].float() * k
        self.count += k
        self.members.extend(update.members or (update.client_id,))
        self.below += update.metrics.get(BELOW_KEY, 0.0) - 0.5

    def finish(self) -> None:
        self.dp.release(self.round, self)
