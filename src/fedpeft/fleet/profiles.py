"""Per-client resources: a LoRA rank, a local step budget, a compute speed and bandwidths, drawn from tiers.

Each client gets its tier values once, seeded, so the same config always gives the same fleet. The speed
and bandwidths drive a simulated clock: a client's round time is what it downloads, trains and uploads,
at its own speed, which decides who misses a round deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedpeft.config.schema import ResourcesConfig


@dataclass(frozen=True)
class ClientProfile:
    """One client's resources (None: not limited / not simulated).

    Example:
        >>> ClientProfile(speed=100.0, uplink_mbps=8.0).seconds(samples=500, bytes_down=0, bytes_up=1_000_000)
        6.0
    """

    rank: int | None = None
    local_steps: int | None = None
    speed: float | None = None  # training examples per second
    uplink_mbps: float | None = None
    downlink_mbps: float | None = None

    def seconds(self, samples: int, bytes_down: int, bytes_up: int) -> float | None:
        """Simulated time for one round of this client: download, compute, upload."""
        if self.speed is None:
            return None
        t = samples / self.speed
        if self.downlink_mbps:
            t += bytes_down * 8 / (self.downlink_mbps * 1e6)
        if self.uplink_mbps:
            t += bytes_up * 8 / (self.uplink_mbps * 1e6)
        return t


def _draw(tiers: Mapping[float, float] | None, n: int, rng: np.random.Generator) -> list[float | None]:
    """Exactly round(share * n) clients per tier (largest remainders first), in a seeded random order."""
    if not tiers:
        return [None] * n
    values = sorted(tiers)
    exact = np.array([tiers[v] * n for v in values])
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    drawn = np.repeat(np.array(values, dtype=float), counts)
    return [float(x) for x in rng.permutation(drawn)]


def assign_profiles(client_ids: Sequence[str], cfg: ResourcesConfig, seed: int) -> dict[str, ClientProfile]:
    """Give every client its tier values (independently per resource), seeded by the run's seed.

    Example:
        >>> cfg = ResourcesConfig(rank_tiers={4: 0.5, 8: 0.5})
        >>> sorted(p.rank for p in assign_profiles(["a", "b", "c", "d"], cfg, seed=0).values())
        [4, 4, 8, 8]
    """
    rng = np.random.default_rng([seed, 0x7E55])
    n = len(client_ids)
    ranks = _draw(cfg.rank_tiers, n, rng)  # type: ignore[arg-type]
    steps = _draw(cfg.step_tiers, n, rng)  # type: ignore[arg-type]
    speeds = _draw(cfg.speed_tiers, n, rng)
    return {
        cid: ClientProfile(
            None if r is None else int(r), None if s is None else int(s), v, cfg.uplink_mbps, cfg.downlink_mbps
        )
        for cid, r, s, v in zip(client_ids, ranks, steps, speeds)
    }
