"""Clients trained in forked worker processes: the sequential results, kept state in the parent, failures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import fedpeft
from fedpeft.build import build_client, build_server, build_setup
from fedpeft.client.app import FederatedClient
from fedpeft.config import load_config
from fedpeft.fleet.processes import ProcessFleet, pack, unpack
from fedpeft.pipeline import codec


def weights(summary: dict) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(summary["run_dir"]) / "adapter" / "adapter_model.safetensors"))


@pytest.mark.parametrize("extra", [[], ["clients.keep_optimizer_state=true", "strategy.name=scaffold"]])
def test_two_workers_give_the_sequential_run_exactly(tiny_config: dict, extra: list[str]) -> None:
    one = fedpeft.run(tiny_config, [*extra, "clients.workers=1", "rounds=3"], progress=False)
    two = fedpeft.run(tiny_config, [*extra, "clients.workers=2", "rounds=3"], progress=False)
    assert one["final"] == two["final"]
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_frames_round_trip_blobs_and_json() -> None:
    header, blobs = unpack(pack({"client_id": "c", "metrics": {"x": float("nan")}}, b"\x00" * 5, b""))
    assert header["client_id"] == "c" and np.isnan(header["metrics"]["x"]) and blobs == [b"\x00" * 5, b""]


class Crashing(FederatedClient):
    """Exits its process outright when asked to train client 'boom' (an OOM kill, a segfault)."""

    def fit(self, ins):  # type: ignore[no-untyped-def]
        if ins.client_id == self.doomed:
            os._exit(3)
        return super().fit(ins)


def test_a_dying_worker_fails_its_client_only_and_is_replaced(tiny_config: dict, tmp_path: Path) -> None:
    cfg = load_config(tiny_config, ["clients.keep_optimizer_state=true"])
    setup = build_setup(cfg)
    strategy, _ = build_server(setup)
    client = build_client(cfg, setup, strategy, tmp_path / "state")
    client.__class__ = Crashing
    ids = list(setup.client_data)
    client.doomed = ids[0]  # type: ignore[attr-defined]
    fleet = ProcessFleet(client, workers=2, threads=1)
    payload = codec.encode(setup.trainable.snapshot())
    from fedpeft.client.messages import FitInstruction

    try:
        first = fleet.fit(1, [FitInstruction(1, c, payload) for c in ids])
        assert "worker process died (exit code 3)" in str(first.replies[ids[0]])
        assert all(not isinstance(first.replies[c], str) for c in ids[1:])
        assert all(c in client.store for c in ids[1:]) and ids[0] not in client.store  # state came back
        again = fleet.fit(2, [FitInstruction(2, c, payload) for c in ids[1:]])
        assert all(not isinstance(r, str) for r in again.replies.values())
        assert len(fleet.workers) == 2 and all(w.process.is_alive() for w in fleet.workers)
    finally:
        fleet.close()
    assert all(not w.process.is_alive() for w in fleet.workers)


def test_workers_die_with_a_killed_run(tiny_config: dict, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    import psutil
    import yaml

    from fedpeft.runtime.checkpoint import Checkpoint

    tiny_config["output"]["dir"] = str(tmp_path)
    tiny_config.update(rounds=40, threads=2)
    tiny_config["clients"].update(local_steps=20, workers=2)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    proc = subprocess.Popen([sys.executable, "-m", "fedpeft.cli", "run", str(config), "--no-progress"])
    deadline = time.time() + 120
    while Checkpoint(tmp_path / "tiny").round < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = psutil.Process(proc.pid).children()
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "workers outlived their run"


def test_strategies_that_write_to_the_shared_model_refuse_workers(tiny_config: dict, tmp_path: Path) -> None:
    from fedpeft.build.fleet import training_fleet
    from fedpeft.errors import ConfigError
    from fedpeft.fleet import LocalFleet

    cfg = load_config(tiny_config, ["strategy.name=flora", "clients.workers=2"])
    setup = build_setup(cfg)
    strategy, _ = build_server(setup)
    client = build_client(cfg, setup, strategy, tmp_path / "state")
    with pytest.raises(ConfigError, match="MergeReceived .flora. writes to the shared model.*clients.workers: 1"):
        training_fleet(cfg, client)
    auto = load_config(tiny_config, ["strategy.name=flora", "threads=2"])
    assert isinstance(training_fleet(auto, client), LocalFleet)  # one process by default
