"""(epsilon, delta) accounting for repeated subsampled Gaussian releases, for the sampler actually used.

Three samplers, each with the adjacency its bound is proved for:

- ``poisson``: each individual (a client, or an example in DP-SGD) joins a release independently with
  probability q. Adjacency: add or remove one individual, so a clipped sum moves by at most C. Accountant:
  Opacus's RDP accountant (Mironov, Talwar and Zhang 2019).
- ``fixed``: exactly m of N individuals, drawn without replacement. Adjacency: replace one individual
  (N is public), so a clipped sum moves by up to 2C: the noise multiplier counts half. Accountant: Google's
  dp-accounting RDP accountant, Theorem 27 of Wang, Balle and Kasiviswanathan (AISTATS 2019).
- ``none``: every release holds the individual's data (local DP: a client's own noised update). Adjacency:
  replace one individual's data, sensitivity 2C; Opacus's RDP accountant with q = 1.

Epsilon is never below 0 (RDP-to-(epsilon, delta) conversions can dip below at huge noise).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable
from typing import Literal

# Opacus and dp-accounting are imported where they are used: importing them costs seconds, paid by every
# Flower ClientApp process.

Sampling = Literal["poisson", "fixed", "none"]
ADJACENCY: dict[str, str] = {
    "poisson": "add/remove one",
    "fixed": "replace one",
    "none": "replace one",
}
SENSITIVITY = {"poisson": 1.0, "fixed": 2.0, "none": 2.0}  # a clipped sum's L2 sensitivity, in clip norms


def rdp_epsilon(history: Iterable[tuple[float, float, int]], delta: float) -> float:
    """Opacus's RDP epsilon of Poisson-subsampled Gaussian releases ``(noise multiplier, q, steps)``."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(float(z), float(q), int(s)) for z, q, s in history]
    if not accountant.history:
        return 0.0
    if any(z == 0 for z, _, _ in accountant.history):
        return math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "optimal order is the largest alpha" at tiny epsilons
        return max(0.0, float(accountant.get_epsilon(delta)))


def without_replacement_epsilon(history: Iterable[tuple[float, float, int]], delta: float, population: int) -> float:
    """dp-accounting's RDP epsilon of releases of m = q N of ``population`` = N drawn without replacement,
    replace-one adjacency; ``z`` is the noise std over the sensitivity (already halved for 2C)."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    rows = [(float(z), float(q), int(s)) for z, q, s in history]
    if not rows:
        return 0.0
    if any(z == 0 for z, _, _ in rows):
        return math.inf
    accountant = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    for z, q, steps in rows:
        m = max(1, round(q * population))
        event = dp_accounting.SampledWithoutReplacementDpEvent(population, m, dp_accounting.GaussianDpEvent(z))
        accountant.compose(event, steps)
    absl = logging.getLogger("absl")  # it warns for every fractional order it cannot evaluate
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        return max(0.0, float(accountant.get_epsilon(delta)))
    finally:
        absl.setLevel(level)


def default_delta(individuals: int) -> float:
    """min(1e-5, N^-1.1) for N individuals (clients, or a client's examples): below 1/N, since a delta of 1/N
    or more allows releasing one individual's data outright.

    Example:
        >>> default_delta(4), f"{default_delta(100_000):.1e}"
        (1e-05, '3.2e-06')
    """
    return min(1e-5, individuals**-1.1)


class PrivacyLedger:
    """Epsilon at a fixed delta of the releases so far, for one sampler (``poisson``, ``fixed`` or ``none``).

    ``step`` takes the noise multiplier as the run sets it (noise std / clip norm); the ledger divides it by
    the sensitivity its adjacency implies (2C under replace-one).

    Example:
        >>> led = PrivacyLedger(delta=1e-5)
        >>> led.step(noise_multiplier=1.0, sample_rate=0.02, steps=100); round(led.epsilon, 2)
        1.84
        >>> fixed = PrivacyLedger(delta=1 / 20**1.1, sampling="fixed", population=20)
        >>> fixed.step(1.0, 5 / 20, steps=3); round(fixed.epsilon, 1)  # Wang, Balle and Kasiviswanathan 2019
        8.1
    """

    def __init__(self, delta: float, sampling: Sampling = "poisson", population: int | None = None) -> None:
        if sampling == "fixed" and not population:
            raise ValueError("PrivacyLedger: sampling without replacement needs the population size")
        self.delta, self.sampling, self.population = delta, sampling, population
        self.history: list[tuple[float, float, int]] = []

    @property
    def adjacency(self) -> str:
        return ADJACENCY[self.sampling]

    @property
    def accountant(self) -> str:
        if self.sampling == "fixed":
            return "dp-accounting RDP, sampling without replacement"
        return "Opacus RDP" + (", Poisson subsampled" if self.sampling == "poisson" else "")

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        row = (float(noise_multiplier), 1.0 if self.sampling == "none" else float(sample_rate), int(steps))
        if self.history and self.history[-1][:2] == row[:2]:
            self.history[-1] = (*row[:2], self.history[-1][2] + row[2])
        else:
            self.history.append(row)

    @property
    def epsilon(self) -> float:
        rows = [(z / SENSITIVITY[self.sampling], q, s) for z, q, s in self.history]
        if self.sampling == "fixed":
            assert self.population is not None
            return without_replacement_epsilon(rows, self.delta, self.population)
        return rdp_epsilon(rows, self.delta)


def calibrate(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    rounds: int,
    sampling: Sampling = "poisson",
    population: int | None = None,
) -> float:
    """The smallest noise multiplier whose epsilon after ``rounds`` releases is at most ``target_epsilon``
    (Opacus's own search for Poisson sampling, bisection on the ledger otherwise).

    Example:
        >>> z = calibrate(4.0, 1e-5, 0.02, 10)
        >>> 0.3 < z < 1.0
        True
        >>> calibrate(4.0, 1e-5, 1.0, 10, "none") == 2 * calibrate(4.0, 1e-5, 1.0, 10)  # replace-one: 2C
        True
    """
    if sampling == "poisson" or sampling == "none":
        from opacus.accountants.utils import get_noise_multiplier

        rate = 1.0 if sampling == "none" else sample_rate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            z = get_noise_multiplier(
                target_epsilon=target_epsilon, target_delta=delta, sample_rate=rate, steps=rounds, accountant="rdp"
            )
        return float(z) * SENSITIVITY[sampling]

    def epsilon(z: float) -> float:
        ledger = PrivacyLedger(delta, sampling, population)
        ledger.step(z, sample_rate, rounds)
        return ledger.epsilon

    low, high = 0.0, 1.0
    while epsilon(high) > target_epsilon:
        low, high = high, high * 2
        if high > 1e6:
            raise ValueError(f"no noise multiplier reaches epsilon {target_epsilon} at delta {delta}")
    while high - low > 1e-3 * high:
        mid = (low + high) / 2
        low, high = (mid, high) if epsilon(mid) > target_epsilon else (low, mid)
    return high
