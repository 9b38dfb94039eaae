"""Cores shared among the fedpeft runs on a machine: the budget, the even split, pinned runs, dead runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fedpeft.fleet import cores

HOLD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("cores", sys.argv[2])  # the module alone: no torch to import
cores = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cores)
lease = cores.CoreLease(threads=None if sys.argv[1] == "share" else int(sys.argv[1]))
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cores.REGISTRY_ENV, str(tmp_path / "cores"))
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return tmp_path / "cores"


def neighbour(kind: str, folder: Path) -> subprocess.Popen:
    """Another fedpeft process holding a lease (``share`` or a pinned thread count) on this machine."""
    env = {**__import__("os").environ, cores.REGISTRY_ENV: str(folder)}
    cmd = [sys.executable, "-c", HOLD, kind, cores.__file__]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_the_budget_is_the_affinity_mask_capped_by_omp_num_threads(folder: Path, monkeypatch) -> None:
    assert cores.available_cores() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cores.available_cores() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert cores.available_cores() == 4


def test_runs_split_the_cores_evenly_and_take_them_back_when_the_others_end(folder: Path) -> None:
    lease = cores.CoreLease(threads=None)
    try:
        assert lease.cores() == 4
        others = [neighbour("share", folder)]
        assert lease.cores() == 2
        others.append(neighbour("share", folder))
        assert lease.cores() == 1  # 4 // 3
        for proc in others:
            proc.kill()
            proc.wait()
        assert lease.cores() == 4
        assert [p.name for p in folder.iterdir()] == [lease.path.name]  # the dead runs' files are gone
    finally:
        lease.release()
    assert not lease.path.exists()


def test_pinned_runs_keep_their_threads_and_the_others_share_the_rest(folder: Path) -> None:
    shared, pinned = cores.CoreLease(threads=None), cores.CoreLease(threads=3)
    other = neighbour("1", folder)
    try:
        assert pinned.cores() == 3
        assert shared.cores() == 1  # 4 cores - 3 - 1 pinned elsewhere, but never fewer than one
        pinned.release()
        assert shared.cores() == 3
    finally:
        other.kill()
        shared.release()


def test_runs_on_other_cores_do_not_count(folder: Path, monkeypatch) -> None:
    other = neighbour("share", folder)  # its mask is the real one, which the fake {7} below does not meet
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {7}, raising=False)
    lease = cores.CoreLease(threads=None)
    try:
        assert lease.neighbours() == [] and lease.cores() == 1
    finally:
        other.kill()
        lease.release()


def test_claim_sets_torchs_threads_and_workers_train_within_the_share(folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(cores, "_LEASE", None)
    before = torch.get_num_threads()
    try:
        assert cores.claim(None) == 4 and torch.get_num_threads() == 4
        assert cores.concurrent(workers=4, threads=1) == 4
        other = neighbour("share", folder)
        assert cores.rebalance() == 2 and torch.get_num_threads() == 2
        assert cores.concurrent(workers=4, threads=1) == 2 and cores.concurrent(workers=4, threads=4) == 1
        other.kill()
        cores.claim(1)  # pinned: the user's workers all train, whatever the share
        assert cores.concurrent(workers=4, threads=1) == 4 and torch.get_num_threads() == 1
    finally:
        assert cores._LEASE is not None
        cores._LEASE.release()
        torch.set_num_threads(before)


def test_a_second_run_slows_the_first_to_its_share_at_its_next_round(folder: Path) -> None:
    lease = cores.CoreLease(threads=None)
    try:
        first = lease.cores()
        other = neighbour("share", folder)
        time.sleep(0.01)
        assert (first, lease.cores()) == (4, 2)
    finally:
        other.kill()
        lease.release()


def test_the_registry_reads_and_removes_only_its_own_lease_files(folder: Path) -> None:
    lease = cores.CoreLease(threads=None)
    try:
        mine = folder / "notes.json"
        mine.write_text("{}")
        assert lease.cores() == 4 and mine.exists()
        assert lease.path.name.startswith(cores.PREFIX) and lease.path.suffix == ".json"
    finally:
        lease.release()


def test_a_folder_that_is_not_private_runs_unshared_with_a_warning(tmp_path: Path, monkeypatch, caplog) -> None:
    import logging

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv(cores.REGISTRY_ENV, str(shared))
    monkeypatch.setattr(cores, "_LEASE", None)
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING, logger="fedpeft"):
            assert cores.claim(1) == 1
        assert "not shared" in caplog.text and cores._LEASE is None and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        assert cores.rebalance() == 2  # no claim: the caller's own setting stays
    finally:
        torch.set_num_threads(before)
