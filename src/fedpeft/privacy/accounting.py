"""(epsilon, delta) accounting through Opacus's RDP accountant, and noise calibrated to a target epsilon."""

from __future__ import annotations

import warnings

# Opacus is imported where it is used: importing it costs seconds, paid by every Flower ClientApp process.


def calibrate(target_epsilon: float, delta: float, sample_rate: float, rounds: int) -> float:
    """The smallest Gaussian noise multiplier whose RDP epsilon after ``rounds`` subsampled releases is at
    most ``target_epsilon`` (Opacus's own search).

    Example:
        >>> z = calibrate(4.0, 1e-5, 0.02, 10)
        >>> 0.3 < z < 1.0
        True
    """
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "optimal order is the largest alpha" at tiny epsilons
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=rounds,
                accountant="rdp",
            )
        )


class PrivacyLedger:
    """Tracks epsilon at a fixed delta, one subsampled Gaussian release per round.

    Example:
        >>> led = PrivacyLedger(delta=1e-5)
        >>> led.step(noise_multiplier=1.0, sample_rate=0.02); led.epsilon > 0
        True
    """

    def __init__(self, delta: float) -> None:
        from opacus.accountants import RDPAccountant

        self.delta = delta
        self.accountant = RDPAccountant()

    def step(self, noise_multiplier: float, sample_rate: float) -> None:
        self.accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)

    @property
    def epsilon(self) -> float:
        if not self.accountant.history:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return float(self.accountant.get_epsilon(self.delta))
