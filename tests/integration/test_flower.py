"""fedpeft on a real Flower deployment on loopback: a SuperLink and two SuperNodes with TLS and SuperNode
authentication, two rounds of the packaged MiniLM + LoRA on small slices, compared with the simulator; the
same under Flower's SecAgg+; and a failed run reported as failed. Compression (top-k with error feedback,
int8) and client-level DP are on in the first run, so they are checked against the simulator too. One
federation serves all three runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import fedpeft
from fedpeft.runtime.flower.federation import LocalFederation

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
BASE = [
    "rounds=2",
    "data.max_train_examples=240",
    "data.max_test_examples=100",
    "partition.method=iid",
    "partition.num_clients=4",
    "clients.per_round=2",
    "clients.local_steps=3",
    "threads=1",
    "eval.every=0",
    "output.plot=false",
    "output.save_adapter=false",
]
# Compression with error feedback (residuals kept on the nodes' disks between rounds) and client-level DP.
QUICK = [
    *BASE,
    "compression.uplink=[{name: topk, density: 0.1}, {name: int8}]",
    "privacy.client_dp=central",
    "privacy.noise_multiplier=0.3",
    "privacy.clip=1.0",
    "privacy.secure_noise=false",  # seeded noise on purpose (a deployment draws it from OS entropy by default)
]
SECURE = [
    *BASE,
    "rounds=1",
    "partition.num_clients=2",
    "clients.per_round=2",
    "privacy.secure_aggregation.enabled=true",
]


def test_loopback_deployment_with_tls_and_node_auth_equals_the_simulator(tmp_path: Path) -> None:
    sim = fedpeft.run(CONFIG, [*QUICK, f"output.dir={tmp_path / 'sim'}"], progress=False)
    sim_secure = fedpeft.run(CONFIG, [*SECURE, f"output.dir={tmp_path / 'sim-secure'}"], progress=False)
    with LocalFederation(tmp_path / "fl", nodes=2) as fed:
        assert fed.creds is not None  # TLS and node keys on
        done = fed.run(CONFIG, [*QUICK, f"output.dir={tmp_path / 'flower'}"], timeout=300)
        assert done.ok, done.log[-4000:]
        secure = fed.run(CONFIG, [*SECURE, f"output.dir={tmp_path / 'flower-secure'}"], timeout=300)
        assert secure.ok and secure.run_dir is not None, secure.log[-4000:]
        # A run that cannot get its nodes fails, and is reported failed although `flwr run` exits 0.
        failed = fed.run(
            CONFIG,
            [*QUICK, f"output.dir={tmp_path / 'failed'}"],
            timeout=120,
            run_config={"nodes": 3, "connect-timeout": 2},
        )
        pids = [p.pid for p in fed.procs]
    assert not failed.ok and failed.status == "finished:failed"
    assert done.run_dir is not None
    flower = json.loads((done.run_dir / "summary.json").read_text())
    # Same seed and config: the same clients, the same local training, the same aggregate. Tolerance 1e-5 on the
    # loss (both sides use one thread; only the process differs).
    assert flower["final"]["accuracy"] == sim["final"]["accuracy"]
    assert flower["final"]["loss"] == pytest.approx(sim["final"]["loss"], abs=1e-5)
    assert flower["ledger"]["bytes_up"] == sim["ledger"]["bytes_up"] > 0
    assert flower["privacy"]["epsilon"] == sim["privacy"]["epsilon"] > 0
    assert flower["compression"]["uplink"] == sim["compression"]["uplink"] != "none"
    rounds = [json.loads(line) for line in (done.run_dir / "metrics.jsonl").read_text().splitlines()]
    sim_rounds = [json.loads(line) for line in (Path(sim["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    # Central DP samples clients by Poisson: the cohorts vary in size, and are the simulator's on Flower too.
    assert [(r["sampled"], r["accepted"], r["rejected"]) for r in rounds[1:]] == [
        (r["sampled"], r["sampled"], {}) for r in sim_rounds[1:]
    ]
    # Under Flower's SecAgg+ the server only sees the masked sum: the same model up to its quantisation
    # (2^22 levels over +-1 per coordinate), so the loss agrees to 1e-4.
    masked = json.loads((secure.run_dir / "summary.json").read_text())
    assert masked["secure_aggregation"]["protocol"] == "flower secagg+"
    assert masked["final"]["loss"] == pytest.approx(sim_secure["final"]["loss"], abs=1e-4)
    assert masked["final"]["loss"] != sim_secure["initial"]["loss"]  # (it trained)
    for pid in pids:  # every Flower process stopped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
