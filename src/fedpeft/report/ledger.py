"""The cost ledger: parameters, bytes up and down, wall time per phase, memory, compute and energy.

Bytes are the real payload lengths. Compute (FLOPs) and energy (CPU seconds times a power figure) are
estimates, and are named so in every report.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class Ledger:
    """Running totals of what a run cost.

    Example:
        >>> led = Ledger(trainable_params=10, total_params=100)
        >>> led.add_round(bytes_up=40, bytes_down=80, train_seconds=1.0)
        >>> led.totals()["bytes_up"]
        40
    """

    trainable_params: int
    total_params: int
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"train": 0.0, "aggregate": 0.0, "evaluate": 0.0})
    rounds: int = 0
    failed_rounds: int = 0
    rejected_updates: int = 0
    dropped_clients: int = 0
    late_updates: int = 0
    samples: int = 0
    simulated_seconds: float | None = None
    watts_per_core: float = 10.0
    flops: float = 0.0
    cpu_seconds: float = 0.0
    peak_client_mb: float = 0.0

    def add_round(
        self,
        *,
        bytes_up: int,
        bytes_down: int,
        train_seconds: float = 0.0,
        aggregate_seconds: float = 0.0,
        evaluate_seconds: float = 0.0,
        failed: bool = False,
        rejected: int = 0,
        samples: int = 0,
        dropped: int = 0,
        late: int = 0,
        simulated_seconds: float | None = None,
        clients: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self.rounds += 1
        self.bytes_up += bytes_up
        self.bytes_down += bytes_down
        self.seconds["train"] += train_seconds
        self.seconds["aggregate"] += aggregate_seconds
        self.seconds["evaluate"] += evaluate_seconds
        self.failed_rounds += int(failed)
        self.rejected_updates += rejected
        self.samples += samples
        self.dropped_clients += dropped
        self.late_updates += late
        if simulated_seconds is not None:
            self.simulated_seconds = (self.simulated_seconds or 0.0) + simulated_seconds
        for cost in (clients or {}).values():
            self.flops += cost.get("flops", 0.0)
            self.cpu_seconds += cost.get("cpu_seconds", 0.0)
            self.peak_client_mb = max(self.peak_client_mb, cost.get("peak_mb", 0.0))

    @property
    def energy_wh(self) -> float:
        """Estimated energy of local training: CPU seconds x watts per core, in watt-hours."""
        return self.energy_wh_of(self.cpu_seconds)

    def energy_wh_of(self, cpu_seconds: float) -> float:
        return cpu_seconds * self.watts_per_core / 3600

    def totals(self) -> dict[str, object]:
        out = asdict(self)
        out["trainable_fraction"] = self.trainable_params / max(self.total_params, 1)
        out["peak_rss_mb"] = round(peak_rss_mb(), 1)
        out["energy_wh_estimate"] = self.energy_wh
        return out
