"""Simulated malicious clients: a seeded fraction of the fleet tampers with its update before sending.

``sign_flip`` sends -scale x its update, ``scale`` sends scale x its update, ``noise`` sends Gaussian noise
of the configured standard deviation in place of its update. Used to show what robust aggregation buys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch  # noqa: F401  (the doctests use it)

from fedpeft.client.app import client_seed
from fedpeft.client.plugins import ClientPlugin, FitContext
from fedpeft.privacy.noise import gaussian


def choose_attackers(client_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """round(fraction x n) clients (at least one), drawn once with the run's seed, in a stable order.

    Example:
        >>> ids = [f"c{i}" for i in range(10)]
        >>> len(choose_attackers(ids, 0.3, seed=0)), choose_attackers(ids, 0.3, seed=0) == choose_attackers(ids, 0.3, 0)
        (3, True)
    """
    count = min(len(client_ids), max(1, round(fraction * len(client_ids))))
    chosen = np.sort(np.random.default_rng([seed, 0xBAD]).choice(len(client_ids), size=count, replace=False))
    return [client_ids[i] for i in chosen]


class Attack(ClientPlugin):
    """Replaces the update of the clients in ``attackers`` (a client plugin, so it acts before encoding).

    Example:
        >>> ctx = FitContext(1, "c0", {}, {}, {}, {}, lr=0.1); ctx.update = {"w": torch.ones(2)}
        >>> Attack("sign_flip", ["c0"], scale=3.0).finish(ctx); ctx.update["w"].tolist()
        [-3.0, -3.0]
    """

    def __init__(
        self, kind: str, attackers: Sequence[str], *, scale: float = 10.0, noise_std: float = 1.0, seed: int = 0
    ) -> None:
        self.kind, self.attackers = kind, set(attackers)
        self.scale, self.noise_std, self.seed = scale, noise_std, seed

    def finish(self, ctx: FitContext) -> None:
        if ctx.client_id not in self.attackers:
            return
        if self.kind == "sign_flip":
            ctx.update = {n: -self.scale * t for n, t in ctx.update.items()}
        elif self.kind == "scale":
            ctx.update = {n: self.scale * t for n, t in ctx.update.items()}
        elif self.kind == "noise":
            base = [*client_seed(self.seed, ctx.round, ctx.client_id), 0xA7]
            ctx.update = {
                n: gaussian(t.shape, self.noise_std, [*base, i]) for i, (n, t) in enumerate(sorted(ctx.update.items()))
            }
        ctx.metrics["attacker"] = 1.0
