"""Secure aggregation of one simulated round (privacy/secagg.py's protocol), with the two halves kept apart.

The client half (``SecureRound.mask``) turns a client's decoded update into a masked vector of fixed-point
integers; the server half (``receive``, ``finish``) holds only public keys, relayed ciphertexts, masked vectors
and the shares survivors reveal, and gets back one thing: the weighted mean of the surviving clients' updates.

Each client pre-scales its update by its public weight share s_i = w_i / sum_j w_j over the round's sampled
clients (w = example count, or 1 under client-level DP), so every coordinate of the sum lies within
+-``bound`` and the fixed point cannot wrap however many clients take part; the server divides the unmasked
sum by the survivors' sum of s_i.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fedpeft.errors import InvalidUpdate
from fedpeft.model.lora_factors import Spec
from fedpeft.model.state import TensorDict
from fedpeft.pipeline import codec
from fedpeft.privacy.secagg import SecAggClient, SecAggError, SecAggServer
from fedpeft.strategy.base import ClientUpdate

MASKED = "secagg/masked"


def frac_bits_for(bound: float) -> int:
    """Fraction bits that keep values within +-bound inside a signed 32-bit fixed point (one bit spare)."""
    return max(0, 30 - math.ceil(math.log2(bound + 1)))


@dataclass(frozen=True)
class SecureAggregation:
    """Settings: ``threshold`` is the share of a round's sampled clients whose masked updates (and shares)
    must arrive; ``bound`` clips each coordinate of a client's weight-scaled update.

    Example:
        >>> SecureAggregation(threshold=0.6).clients_needed(10)
        6
    """

    threshold: float = 0.6
    bound: float = 1.0

    def clients_needed(self, sampled: int) -> int:
        return max(2, math.ceil(self.threshold * sampled))

    def start(self, sampled: Sequence[str], weights: Mapping[str, float], spec: Spec) -> SecureRound:
        return SecureRound(sampled, weights, spec, threshold=self.clients_needed(len(sampled)), bound=self.bound)


class SecureRound:
    """One round's protocol among ``sampled``: keys and encrypted shares are exchanged when it is built
    (step 1-2); clients then send ``mask``-ed updates (step 3); ``finish`` unmasks their mean (step 4).

    Example:
        >>> spec = {"w": ((3,), torch.float32)}
        >>> rnd = SecureRound(["a", "b", "c"], {"a": 1.0, "b": 1.0, "c": 2.0}, spec, threshold=2, bound=1.0)
        >>> for cid, v in (("a", 0.1), ("c", 0.4)):
        ...     rnd.receive(cid, rnd.mask(cid, {"w": torch.full((3,), v)}))
        >>> [round(x, 6) for x in rnd.finish().delta["w"].tolist()]  # (1 x 0.1 + 2 x 0.4) / 3; b dropped out
        [0.3, 0.3, 0.3]
    """

    def __init__(
        self, sampled: Sequence[str], weights: Mapping[str, float], spec: Spec, *, threshold: int, bound: float
    ) -> None:
        self.spec = {n: spec[n] for n in sorted(spec)}
        self.size = sum(math.prod(shape) for shape, _ in self.spec.values())
        total = float(sum(weights[c] for c in sampled))
        self.share = {c: weights[c] / total for c in sampled}  # public: every client announces its weight
        self.weights = dict(weights)
        self.bound, self.frac_bits = bound, frac_bits_for(bound)
        # client half: each client's keys and secrets (never read by the server half)
        self._clients = {cid: SecAggClient(cid, i + 1) for i, cid in enumerate(sorted(sampled))}
        # server half: the public keys it relays, then masked vectors and revealed shares
        self.peers = {cid: (c.index, c.public_key) for cid, c in self._clients.items()}
        self.server = SecAggServer(threshold, bound, self.frac_bits)
        for cid, c in self._clients.items():
            for other, blob in c.shares_for(self.peers, threshold).items():  # relayed, encrypted end to end
                self._clients[other].received[cid] = blob

    def mask(self, cid: str, update: TensorDict) -> bytes:
        """Client half: the masked, scaled, fixed-point update as a payload (int32 bits of the uint32 words)."""
        flat = np.concatenate([update[n].detach().double().flatten().numpy() for n in self.spec]) * self.share[cid]
        if not np.isfinite(flat).all():
            raise InvalidUpdate(f"{cid}: update holds NaN or infinite values; not sending it")
        masked = self._clients[cid].masked_input(flat, self.bound, self.frac_bits)
        return codec.encode({MASKED: torch.from_numpy(masked.view(np.int32))})

    def receive(self, cid: str, payload: bytes) -> None:
        """Server half: keep a client's masked vector after checking its size (all it can check)."""
        if cid not in self.peers:
            raise InvalidUpdate(f"{cid}: not in this round's secure aggregation")
        words = codec.decode(payload, {MASKED: ((self.size,), torch.int32)}, sender=cid)[MASKED]
        self.server.masked[cid] = words.numpy().view(np.uint32)

    @property
    def received(self) -> list[str]:
        return sorted(self.server.masked)

    def finish(self) -> ClientUpdate:
        """Survivors reveal shares (client half), the server unmasks the sum and divides by the survivors'
        weight share: their weighted mean, as one update standing for all of them."""
        survivors = self.received
        if len(survivors) < self.server.t:
            raise SecAggError(
                f"{len(survivors)} of {len(self.peers)} clients sent masked updates; secure "
                f"aggregation needs {self.server.t} (privacy.secure_aggregation.threshold)"
            )
        dropped = sorted(set(self.peers) - set(survivors))
        reveals = {cid: self._clients[cid].reveal(survivors, dropped) for cid in survivors}
        total = self.server.unmask(self.size, self.peers, reveals) / sum(self.share[c] for c in survivors)
        delta, start = {}, 0
        for name, (shape, dtype) in self.spec.items():
            n = math.prod(shape)
            delta[name] = torch.from_numpy(total[start : start + n].reshape(shape)).to(dtype)
            start += n
        return ClientUpdate(
            "secure-aggregate", delta, int(sum(self.weights[c] for c in survivors)), members=tuple(survivors)
        )
