"""Byzantine-robust replacements for the weighted mean (norm bounding of single updates is in base).

Each aggregator maps the round's updates to one delta per tensor name, like ``weighted_mean``:
- ``median``: the coordinate-wise median (Yin et al., 2018);
- ``trimmed_mean``: per coordinate, drop the ``fraction`` largest and smallest values, average the rest;
- ``krum`` / ``multi_krum``: score each update by the summed squared distances to its n - f - 2 nearest
  neighbours and average the ``m`` best (Blanchard et al., 2017; Krum is m = 1).
Robust aggregators ignore example counts: a malicious client could inflate its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch

from fedpeft.model.state import TensorDict
from fedpeft.strategy.base import ClientUpdate, weighted_mean

Aggregator = Callable[[Sequence[ClientUpdate], Sequence[str] | None], TensorDict]


def _stack(updates: Sequence[ClientUpdate], name: str) -> torch.Tensor:
    return torch.stack([u.delta[name].float() for u in updates])


def _names(updates: Sequence[ClientUpdate], names: Sequence[str] | None) -> Sequence[str]:
    return list(updates[0].delta) if names is None else names


def coordinate_median(updates: Sequence[ClientUpdate], names: Sequence[str] | None = None) -> TensorDict:
    """The coordinate-wise median (the mean of the two middle values for an even count).

    Example:
        >>> ups = [ClientUpdate(c, {"w": torch.tensor([v])}, 1) for c, v in [("a", 1.0), ("b", 2.0), ("c", 90.0)]]
        >>> coordinate_median(ups)["w"].tolist()
        [2.0]
    """
    return {n: _stack(updates, n).quantile(0.5, dim=0) for n in _names(updates, names)}


def trimmed_mean(
    updates: Sequence[ClientUpdate], names: Sequence[str] | None = None, fraction: float = 0.1
) -> TensorDict:
    """Per coordinate, the mean after dropping floor(fraction n) values at each end.

    Example:
        >>> ups = [ClientUpdate(str(v), {"w": torch.tensor([v])}, 1) for v in (-50.0, 1.0, 2.0, 3.0, 70.0)]
        >>> trimmed_mean(ups, fraction=0.2)["w"].tolist()
        [2.0]
    """
    cut = math.floor(fraction * len(updates))
    out: TensorDict = {}
    for n in _names(updates, names):
        ordered = _stack(updates, n).sort(dim=0).values
        out[n] = ordered[cut : len(updates) - cut].mean(0)
    return out


def krum_scores(updates: Sequence[ClientUpdate], byzantine: int) -> torch.Tensor:
    """Each update's summed squared distance to its n - f - 2 nearest other updates."""
    flat = torch.stack([torch.cat([t.float().reshape(-1) for t in u.delta.values()]) for u in updates])
    dist = torch.cdist(flat[None], flat[None])[0] ** 2
    neighbours = max(1, len(updates) - byzantine - 2)
    nearest = dist.sort(dim=1).values[:, 1 : neighbours + 1]  # column 0 is the update itself
    return nearest.sum(1)


def multi_krum(
    updates: Sequence[ClientUpdate], names: Sequence[str] | None = None, byzantine: int = 1, m: int | None = 1
) -> TensorDict:
    """The plain mean of the ``m`` updates with the lowest Krum scores (None: n - f of them).

    Example:
        >>> vals = [1.0, 1.1, 0.9, 1.05, 40.0]
        >>> ups = [ClientUpdate(str(i), {"w": torch.tensor([v])}, 1) for i, v in enumerate(vals)]
        >>> round(multi_krum(ups, byzantine=1, m=1)["w"].item(), 2)
        1.05
    """
    m = len(updates) - byzantine if m is None else m
    best = krum_scores(updates, byzantine).argsort()[: max(1, min(m, len(updates)))].tolist()
    chosen = [updates[i] for i in best]
    return {n: _stack(chosen, n).mean(0) for n in _names(updates, names)}


def make_aggregator(name: str, *, trim_fraction: float = 0.1, byzantine: int = 1, m: int | None = None) -> Aggregator:
    """The mean a strategy uses for its updates: the weighted mean or a robust one."""
    if name == "mean":
        return weighted_mean
    if name == "median":
        return coordinate_median
    if name == "trimmed_mean":
        return partial(trimmed_mean, fraction=trim_fraction)
    if name == "krum":
        return partial(multi_krum, byzantine=byzantine, m=1)
    if name == "multi_krum":
        return partial(multi_krum, byzantine=byzantine, m=m)
    raise ValueError(f"unknown aggregator {name!r}")
