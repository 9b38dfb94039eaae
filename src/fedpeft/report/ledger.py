"""The cost ledger: parameters, bytes up and down, wall time per phase, memory."""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass, field


def rss_mb() -> float:
    """Current resident memory of this process in MiB."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


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

    def totals(self) -> dict[str, object]:
        out = asdict(self)
        out["trainable_fraction"] = self.trainable_params / max(self.total_params, 1)
        out["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return out
