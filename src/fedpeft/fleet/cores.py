"""How many CPU cores this run may use, so that fedpeft runs sharing a machine never oversubscribe it.

A run may use the cores of its affinity mask (``taskset``, a container's cpuset), capped by
``OMP_NUM_THREADS`` when that is set. Every fedpeft process that trains or evaluates registers in a folder
of lock files (one per process, locked while it lives, naming its cores and its pinned ``threads`` if any).
A run with ``threads`` set uses exactly that many; the others split what the pinned runs leave of their
cores evenly, re-read at each round, so a run started alone slows down to its share when a second starts and
takes the cores back when it ends. Worker processes keep their thread count (their numbers do not depend on
the neighbours): the share decides how many of them train at once.

Example:
    >>> lease = CoreLease(threads=None)  # doctest: +SKIP
    >>> lease.cores()  # two cores, one other fedpeft run sharing them  # doctest: +SKIP
    1
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

REGISTRY_ENV = "FEDPEFT_CORES_DIR"  # where the lock files live (tests point it at a folder of their own)
PREFIX = "fedpeft-lease-"  # the only files the registry reads or removes


def allowed_cpus() -> frozenset[int]:
    """The CPUs this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def available_cores() -> int:
    """The cores a run may use: its affinity mask, capped by ``OMP_NUM_THREADS`` when that is a number.

    Example:
        >>> available_cores() >= 1
        True
    """
    cores = len(allowed_cpus())
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    return max(1, cores)


log = logging.getLogger(__name__)


def registry() -> Path:
    return Path(os.environ.get(REGISTRY_ENV) or Path(tempfile.gettempdir()) / f"fedpeft-cores-{os.getuid()}")


class CoreLease:
    """This process's place among the fedpeft runs on the machine, held until the process ends or
    ``release()``.

    Example:
        >>> lease = CoreLease(threads=2)  # doctest: +SKIP
        >>> lease.cores()  # pinned: 2 whatever else runs  # doctest: +SKIP
        2
    """

    def __init__(self, threads: int | None) -> None:
        self.threads, self.cpus = threads, allowed_cpus()
        self.folder = registry()
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(self.folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PermissionError(f"{self.folder} is not a private folder of this user's")
        self.owner = os.getpid()
        # written and locked under a name the neighbours do not read, then renamed: never seen half-made
        fd, name = tempfile.mkstemp(prefix=f"{PREFIX}{self.owner}-", suffix=".new", dir=self.folder)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"cpus": sorted(self.cpus), "threads": threads}).encode())
        os.fsync(fd)
        self.path = Path(name).with_suffix(".json")
        os.rename(name, self.path)
        self._fd: int | None = fd

    def neighbours(self) -> list[dict[str, Any]]:
        """The other live runs whose cores overlap this one's (a file whose owner died is removed)."""
        out = []
        for path in self.folder.glob(f"{PREFIX}*.json"):
            if path == self.path:
                continue
            with contextlib.suppress(OSError, ValueError), open(path, "rb") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # locked: its owner lives
                    info = json.loads(f.read() or b"{}")
                    if self.cpus & set(info.get("cpus", [])):
                        out.append(info)
                    continue
                path.unlink(missing_ok=True)  # (we got the lock: its owner is gone)
        return out

    def cores(self) -> int:
        """The threads this run should use now: its own ``threads`` when pinned, else an even split of what
        the pinned neighbours leave."""
        if self.threads is not None:
            return self.threads
        budget = available_cores()
        others = self.neighbours()
        pinned = sum(int(o["threads"]) for o in others if o.get("threads"))
        sharing = 1 + sum(1 for o in others if not o.get("threads"))
        return max(1, (budget - pinned) // sharing)

    def release(self) -> None:
        """Leave the registry (a forked worker's inherited copy leaves the file to its owner)."""
        if self._fd is not None and os.getpid() == self.owner:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


_LEASE: CoreLease | None = None


def claim(threads: int | None) -> int:
    """Register this process (once; a later claim changes its pinned ``threads``), set torch's threads to
    its share, and return it."""
    global _LEASE
    if _LEASE is None or _LEASE.threads != threads or _LEASE._fd is None:
        release()
        try:
            _LEASE = CoreLease(threads)
        except OSError as exc:  # (a registry folder that is not ours: run unshared rather than not at all)
            log.warning(
                "cores are not shared with other fedpeft runs: %s; set %s to a folder of yours", exc, REGISTRY_ENV
            )
            _LEASE = None
            if threads is not None:
                import torch

                torch.set_num_threads(threads)
            return threads or available_cores()
        atexit.register(_LEASE.release)
    return rebalance()


def release() -> None:
    """Leave the registry (at the end of a run, so a finished run in a notebook no longer takes a share)."""
    global _LEASE
    if _LEASE is not None:
        _LEASE.release()
        _LEASE = None


def share() -> int:
    """The cores this process may use now (all available ones when it has claimed none)."""
    return _LEASE.cores() if _LEASE is not None else available_cores()


def concurrent(workers: int, threads: int) -> int:
    """How many of a run's ``workers`` processes (``threads`` each) may train at once: all of them when the
    run's threads are pinned, else as many as its share of the cores holds (at least one)."""
    if _LEASE is None or _LEASE.threads is not None:
        return workers
    return max(1, min(workers, _LEASE.cores() // threads))


def rebalance() -> int:
    """Set torch's CPU threads to this process's current share (when it has claimed one), and return them."""
    import torch

    if _LEASE is None:  # nothing claimed: leave the caller's own setting alone
        return int(torch.get_num_threads())
    n = share()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
