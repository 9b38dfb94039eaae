"""Round checkpoints: a run stopped at any point resumes from its last completed round and ends with the
numbers of a run that never stopped."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import fedpeft
from fedpeft.client import FederatedClient
from fedpeft.errors import ConfigError
from fedpeft.runtime.checkpoint import Checkpoint, CheckpointError, flatten, unflatten

TIMING = {"seconds", "train_seconds", "cpu_seconds", "peak_mb", "energy_wh_estimate", "flops"}


def comparable(value: object) -> object:
    """A metrics record without wall-clock measurements."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def records(run_dir: str) -> list[object]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [comparable(json.loads(line)) for line in lines]


def adapter(run_dir: str) -> dict[str, torch.Tensor]:
    return load_file(str(next((Path(run_dir) / "adapter").glob("*.safetensors"))))


def stop_in(round_: int, client_index: int):  # type: ignore[no-untyped-def]
    """Make the client fit raise KeyboardInterrupt on the given client of the given round (as a kill would)."""
    original = FederatedClient.fit
    calls: dict[int, int] = {}

    def fit(self: FederatedClient, ins):  # type: ignore[no-untyped-def]
        calls[ins.round] = calls.get(ins.round, 0) + 1
        if ins.round == round_ and calls[ins.round] == client_index + 1:
            raise KeyboardInterrupt
        return original(self, ins)

    return fit


CASES = {
    "fedadam": ["strategy.name=fedadam", "strategy.server_lr=0.01"],
    "scaffold with optimiser state": ["strategy.name=scaffold", "clients.keep_optimizer_state=true"],
    "flora": ["strategy.name=flora"],
    "adaptive client DP": ["privacy.client_dp=central", "privacy.noise_multiplier=0.3", "privacy.adaptive_clip=true"],
    "DP-SGD + top-k with error feedback": [
        "privacy.dp_sgd.enabled=true",
        "privacy.dp_sgd.noise_multiplier=0.5",
        "compression.uplink=[{name: topk, density: 0.2}]",
    ],
    "stale stragglers and dropouts": [
        "resources.speed_tiers={40: 0.5, 400: 0.5}",
        "participation.deadline_s=0.5",
        "participation.stragglers=stale",
        "participation.dropout=0.2",
    ],
}


@pytest.mark.parametrize("case", list(CASES))
def test_resume_after_a_crash_mid_round_equals_the_uninterrupted_run(
    case: str, tiny_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["rounds=4", "eval.every=1", "clients.per_round=4", *CASES[case]]
    tiny_config["output"]["dir"] = str(tmp_path / "whole")
    whole = fedpeft.run(tiny_config, args, progress=False)
    tiny_config["output"]["dir"] = str(tmp_path / "cut")
    with monkeypatch.context() as m:
        m.setattr(FederatedClient, "fit", stop_in(3, 0 if "stragglers" in case else 2))
        with pytest.raises(KeyboardInterrupt):
            fedpeft.run(tiny_config, args, progress=False)
    cut = tmp_path / "cut" / "tiny"
    assert Checkpoint(cut).round == 2 and len(records(str(cut))) == 3
    resumed = fedpeft.resume(cut, progress=False)
    assert all(math.isfinite(v) for v in whole["final"].values())  # (NaN would compare unequal to itself)
    assert resumed["final"] == whole["final"]
    assert records(resumed["run_dir"]) == records(whole["run_dir"])
    a, b = adapter(resumed["run_dir"]), adapter(whole["run_dir"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["ledger"]["bytes_up"] == whole["ledger"]["bytes_up"]
    if resumed.get("privacy"):
        assert resumed["privacy"] == whole["privacy"]


def test_a_killed_process_resumes_from_the_command_line(tiny_config: dict, tmp_path: Path) -> None:
    tiny_config["output"]["dir"] = str(tmp_path)
    tiny_config["rounds"] = 40
    tiny_config["clients"]["local_steps"] = 20
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "fedpeft.cli", "run", str(config), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "tiny"
    deadline = time.time() + 120
    while Checkpoint(run_dir).round < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = Checkpoint(run_dir).round
    assert 3 <= done < 40, "the run was not stopped part-way"
    out = subprocess.run(
        [sys.executable, "-m", "fedpeft.cli", "run", "--resume", str(run_dir), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert f"resuming after round {done} of 40" in out.stdout
    rounds = [r["round"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]
    assert rounds == list(range(41))


def test_flatten_round_trips_nested_state() -> None:
    state = {"g": {"w": torch.arange(3.0)}, "past": {3: {"w": torch.ones(2)}}, "hist": [(1.0, 0.5, 2)], "n": None}
    tensors: dict[str, torch.Tensor] = {}
    back = unflatten(json.loads(json.dumps(flatten(state, "s", tensors))), tensors)
    assert torch.equal(back["g"]["w"], state["g"]["w"]) and list(back["past"]) == [3]
    assert back["hist"] == [[1.0, 0.5, 2]] and back["n"] is None
    with pytest.raises(TypeError, match="cannot checkpoint"):
        flatten({"x": object()}, "s", {})


def test_resume_refuses_what_it_cannot_do(tiny_config: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a fedpeft run folder"):
        fedpeft.resume(tmp_path)
    tiny_config["output"]["dir"] = str(tmp_path)
    done = fedpeft.run(tiny_config, ["rounds=1"], progress=False)
    with pytest.raises(ConfigError, match="only threads= may change"):
        fedpeft.resume(done["run_dir"], ["rounds=5"])
    with pytest.raises(ConfigError, match="already ran"):
        fedpeft.resume(done["run_dir"], ["threads=1"])
    (Path(done["run_dir"]) / "checkpoint" / "tensors.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(CheckpointError, match="damaged"):
        Checkpoint(Path(done["run_dir"])).load()


def test_many_client_states_are_checkpointed_in_parts_and_restored(tmp_path: Path) -> None:
    from fedpeft.client import ClientStateStore

    store = ClientStateStore(tmp_path / "spill", max_bytes=4_000)  # most states spill to disk
    states = {f"c{i}": {"m": torch.full((100,), float(i))} for i in range(30)}
    for cid, state in states.items():
        store.put(cid, state)
    ck = Checkpoint(tmp_path / "run")
    ck.save(1, {"x": 1}, store.changed_parts(part_bytes=1_000))
    assert len(list(ck.folder.glob("clients-1*.safetensors"))) == 10  # 400 bytes a state: 3 reach a part
    assert not store.changed
    restored = ClientStateStore(tmp_path / "spill2")
    ck.restore_clients(restored)
    assert all(torch.equal(restored.get(cid)["m"], s["m"]) for cid, s in states.items())
