"""Compression and the cost ledger inside real runs on the tiny BERT."""

import json
from pathlib import Path

import pytest

import fedpeft
from fedpeft.build import build_setup as build
from fedpeft.client import FederatedClient, FitReply
from fedpeft.config.load import load_config
from fedpeft.recipe import make_simulator
from fedpeft.report import RunDir, summary_text

LEARN = ["rounds=6", "clients.per_round=6", "clients.local_steps=6", "clients.lr=0.03", "model.pooling=mean"]
HEAVY = {
    "uplink": [{"name": "lora_rank", "keep": 2}, {"name": "topk", "density": 0.25}, {"name": "int4"}],
    "downlink": [{"name": "int8"}],
}


def records(summary: dict) -> list[dict]:
    return [json.loads(x) for x in Path(summary["run_dir"], "metrics.jsonl").read_text().splitlines()]


def test_compressed_run_learns_with_a_fraction_of_the_bytes(tiny_config: dict) -> None:
    plain = fedpeft.run(tiny_config, LEARN, progress=False)
    packed = fedpeft.run({**tiny_config, "compression": HEAVY}, LEARN, progress=False)
    assert packed["final"]["accuracy"] >= 0.8 > 0.6 > packed["initial"]["accuracy"]
    up, down = (packed["ledger"][k] / plain["ledger"][k] for k in ("bytes_up", "bytes_down"))
    assert up < 0.15 and down < 0.45  # int8 plus scales and a layout header, on a tiny model
    assert packed["compression"]["error_feedback"] is True
    assert packed["compression"]["uplink"] == "lora_rank(keep=2) → topk(density=0.25) → int4(block=64)"
    text = summary_text(packed)
    assert "Wire:    uplink lora_rank(keep=2) → topk(density=0.25) → int4(block=64) with error feedback" in text
    assert "TFLOPs" in text and "Wh (estimates" in text


def test_ledger_records_each_clients_costs(tiny_config: dict) -> None:
    summary = fedpeft.run(tiny_config, ["ledger.watts_per_core=20"], progress=False)
    rounds = records(summary)[1:]
    for r in rounds:
        assert len(r["clients"]) == r["sampled"]
        assert sum(c["bytes_up"] for c in r["clients"].values()) == r["bytes_up"]
        assert sum(c["bytes_down"] for c in r["clients"].values()) == r["bytes_down"]
        assert sum(c["samples"] for c in r["clients"].values()) == r["samples"]
        assert all(c["flops"] > 0 and c["peak_mb"] > 0 and c["cpu_seconds"] > 0 for c in r["clients"].values())
        assert all(
            c["energy_wh_estimate"] == pytest.approx(c["cpu_seconds"] * 20 / 3600) for c in r["clients"].values()
        )
    led = summary["ledger"]
    assert led["flops"] == pytest.approx(sum(c["flops"] for r in rounds for c in r["clients"].values()))
    assert led["energy_wh_estimate"] == pytest.approx(led["cpu_seconds"] * 20 / 3600)


def test_flops_follow_what_trains(tiny_config: dict) -> None:
    """Per token: a head-only probe needs no backward through the body, LoRA needs activation gradients
    everywhere, full fine-tuning adds every weight gradient."""
    per_token = {}
    for method in ("head", "lora", "full"):
        cfg = {**tiny_config, "peft": {"method": method}, "rounds": 1}
        if method == "lora":
            cfg["peft"] = tiny_config["peft"]
        rounds = records(fedpeft.run(cfg, progress=False))[1:]
        flops = sum(c["flops"] for r in rounds for c in r["clients"].values())
        per_token[method] = flops / sum(c["samples"] for r in rounds for c in r["clients"].values())
    assert per_token["head"] < 0.6 * per_token["lora"] < 0.6 * per_token["full"]


def test_error_feedback_residual_is_kept_per_client(tiny_config: dict, tmp_path: Path) -> None:
    cfg = load_config({**tiny_config, "compression": {"uplink": [{"name": "topk", "density": 0.1}]}})
    setup = build(cfg)
    sim = make_simulator(setup, RunDir.create(cfg).path / "client_state")
    out = sim.run_round(1)
    for cid in out.accepted:
        residual = {k: v for k, v in (sim.client.store.get(cid) or {}).items() if k.startswith("ef/")}
        assert set(residual) == {f"ef/{n}" for n in setup.trainable.names}
        assert sum(float(v.norm()) for v in residual.values()) > 0
    assert not any(
        k.startswith("ef/") for c in setup.client_data if c not in out.accepted for k in (sim.client.store.get(c) or {})
    )


class Truncating(FederatedClient):
    def fit(self, ins):  # type: ignore[no-untyped-def]
        reply = super().fit(ins)
        if ins.client_id == self.bad:
            return FitReply(reply.client_id, reply.payload[:-10], reply.num_examples, reply.metrics)
        return reply


def test_a_bad_compressed_update_drops_only_its_client(tiny_config: dict) -> None:
    cfg = load_config({**tiny_config, "compression": HEAVY})
    setup = build(cfg)
    sim = make_simulator(setup, RunDir.create(cfg).path / "client_state")
    sim.client.__class__ = Truncating
    sim.client.bad = sorted(setup.client_data)[0]  # type: ignore[attr-defined]
    sim.engine.client_ids = sorted(setup.client_data)[:3]
    out = sim.run_round(1)
    assert out.status == "ok" and list(out.rejected) == [sim.client.bad]  # type: ignore[attr-defined]
    assert "not a valid safetensors" in out.rejected[sim.client.bad] and len(out.accepted) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("strategy", ["fedavg", "ffa_lora", "flora", "flexlora", "hetlora", "scaffold"])
def test_compression_composes_with_strategies_and_rank_tiers(strategy: str, tiny_config: dict) -> None:
    tiers = {} if strategy == "scaffold" else {"resources": {"rank_tiers": {2: 0.5, 4: 0.5}}}
    cfg = {
        **tiny_config,
        **tiers,
        "strategy": {"name": strategy},
        "compression": {**HEAVY, "uplink": [{"name": "lora_rank", "keep": 3}, *HEAVY["uplink"][1:]]},
    }
    summary = fedpeft.run(cfg, progress=False)
    assert summary["ledger"]["rejected_updates"] == 0
    assert summary["updates_accepted"] == 2 * tiny_config["clients"]["per_round"]


@pytest.mark.parametrize(
    "peft",
    [
        {"method": "houlsby"},
        {"method": "ia3"},
        {"method": "sparse", "density": 0.05},
        {"method": "prompt"},
        {"method": "bitfit"},
        {"method": "lora", "r": 4, "use_dora": True},
    ],
    ids=lambda p: p["method"] + ("-dora" if p.get("use_dora") else ""),
)
def test_compression_composes_with_peft_methods(peft: dict, tiny_config: dict) -> None:
    cfg = {
        **tiny_config,
        "peft": peft,
        "rounds": 1,
        "compression": {"uplink": [{"name": "topk", "density": 0.3}, {"name": "int4"}], "downlink": [{"name": "bf16"}]},
    }
    summary = fedpeft.run(cfg, progress=False)
    assert summary["ledger"]["rejected_updates"] == 0
    assert summary["updates_accepted"] == tiny_config["clients"]["per_round"]


@pytest.mark.parametrize("strategy", ["fedsa_lora", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad"])
def test_compression_composes_with_the_other_strategies(strategy: str, tiny_config: dict) -> None:
    cfg = {
        **tiny_config,
        "strategy": {"name": strategy},
        "compression": {
            "uplink": [{"name": "randk", "density": 0.5, "rescale": True}, {"name": "int2"}],
            "downlink": [{"name": "int8"}],
        },
    }
    summary = fedpeft.run(cfg, progress=False)
    assert summary["ledger"]["rejected_updates"] == 0
    assert summary["updates_accepted"] == 2 * tiny_config["clients"]["per_round"]
