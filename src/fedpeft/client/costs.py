"""What local training costs a client: wall and CPU time, peak memory, training FLOPs.

Memory is sampled (resident set size every few milliseconds on CPU, the allocator's peak on CUDA), so it is
the peak of the whole process while the client trained. FLOPs are counted by PyTorch's FlopCounterMode on
one real training step (forward and backward: matrix products, convolutions, attention) and scaled by the
tokens (or examples) processed, so they are an estimate that follows padding and sequence length.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

import torch
from torch.utils.flop_counter import FlopCounterMode

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident memory of this process now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


class CostMeter:
    """Measures a block: CPU seconds (all threads) and peak memory in MiB.

    Example:
        >>> with CostMeter() as meter:
        ...     _ = torch.ones(1000, 1000).sum()
        >>> meter.cpu_seconds >= 0 and meter.peak_mb > 0
        True
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.cpu_seconds = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes())

    def __enter__(self) -> CostMeter:
        self._cuda = torch.cuda.is_available()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        self._peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._cpu = time.process_time()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cpu_seconds = time.process_time() - self._cpu
        self._stop.set()
        self._thread.join()
        peak = max(self._peak, rss_bytes())
        if self._cuda:
            peak = torch.cuda.max_memory_allocated()
        self.peak_mb = peak / 2**20


def batch_units(batch: dict[str, torch.Tensor]) -> int:
    """What a step's cost scales with: tokens (padded, as computed) for text, examples otherwise."""
    ids = batch.get("input_ids")
    if ids is not None:
        return int(ids.numel())
    return int(next(iter(batch.values())).shape[0])


class FlopCounter:
    """Training FLOPs per unit (token or example), counted on a real step, then scaled.

    ``one_off`` counts work that a step may do once and later skip (filling the frozen-prefix cache); a
    step during which it changed is counted but measured again later, so the figure is the steady state.

    Example:
        >>> fc = FlopCounter()
        >>> lin = torch.nn.Linear(4, 3)
        >>> with fc.measure(units=2):
        ...     lin(torch.ones(2, 4)).sum().backward()
        >>> fc.per_unit  # forward 2*4*3 per example, backward the same (weight gradient; the input needs none)
        48.0
    """

    def __init__(self, one_off: Callable[[], int] | None = None) -> None:
        self.per_unit: float | None = None
        self.settled = False
        self.one_off = one_off or (lambda: 0)

    def measure(self, units: int) -> _Measure:
        return _Measure(self, units)


class _Measure:
    def __init__(self, counter: FlopCounter, units: int) -> None:
        self.counter, self.units = counter, units
        self.mode = None if counter.settled or units == 0 else FlopCounterMode(display=False)  # 0: empty batch

    def __enter__(self) -> None:
        if self.mode is not None:
            self.before = self.counter.one_off()
            self.mode.__enter__()

    def __exit__(self, *args: object) -> None:
        if self.mode is not None:
            self.mode.__exit__(*args)
            self.counter.per_unit = self.mode.get_total_flops() / max(self.units, 1)
            self.counter.settled = self.counter.one_off() == self.before
