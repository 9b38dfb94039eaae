"""LoRA-aware strategies on the tiny BERT: what travels, what stays, and exact merging (FLoRA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import fedpeft
from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.evaluation import predict
from fedpeft.model.lora_factors import lora_pairs, product
from fedpeft.pipeline import codec
from fedpeft.recipe import make_simulator
from fedpeft.report import RunDir

TIERS = ["peft.r=4", "resources.rank_tiers={2: 0.5, 4: 0.5}", "clients.per_round=6"]


def setup_for(tiny_config: dict, overrides: list[str]):  # type: ignore[no-untyped-def]
    cfg = load_config(tiny_config, overrides)
    setup = build(cfg)
    return cfg, setup, make_simulator(setup, RunDir.create(cfg).path / "client_state")


@pytest.mark.parametrize("name", ["fedavg", "ffa_lora", "fedsa_lora", "hetlora"])
def test_low_rank_clients_send_smaller_updates(tiny_config: dict, name: str) -> None:
    _cfg, _setup, sim = setup_for(tiny_config, [f"strategy.name={name}", *TIERS])
    sizes = {}
    for cid in sim.client_ids:
        tensors, config = sim.strategy.downlink(1, cid)
        sizes.setdefault(config["rank"], set()).add(len(codec.encode(tensors)))
    assert set(sizes) == {2, 4}
    assert max(sizes[2]) < min(sizes[4])
    out = sim.run_round(1)
    assert out.status == "ok" and not out.rejected
    for p in sim.strategy.pairs:  # a rank-2 client's update leaves the other components alone
        assert p.b in sim.global_state


def test_ffa_lora_never_moves_a_and_sends_only_b(tiny_config: dict) -> None:
    _cfg, setup, sim = setup_for(tiny_config, ["strategy.name=ffa_lora"])
    params = dict(setup.model.named_parameters())
    pairs = lora_pairs(params)
    a_before = {p.a: params[p.a].detach().clone() for p in pairs}
    assert not any(p.a in sim.global_state for p in pairs)
    sim.run_round(1)
    sim.run_round(2)
    assert all(torch.equal(params[n], a) for n, a in a_before.items())
    assert all(p.b in sim.global_state for p in pairs)


def test_fedsa_personal_b_differs_per_client_and_never_travels(tiny_config: dict) -> None:
    _cfg, _setup, sim = setup_for(tiny_config, ["strategy.name=fedsa_lora", "clients.per_round=6"])
    out = sim.run_round(1)
    stored = [sim.client.store.get(c) for c in out.accepted]
    b_names = [k for k in stored[0] if k.startswith("personal/")]
    assert b_names and all("lora_B" in k for k in b_names)
    assert not torch.equal(stored[0][b_names[0]], stored[1][b_names[0]])
    assert not any("lora_B" in n for n in sim.strategy.uplink_spec(out.accepted[0], {}))


def test_flora_merges_exactly_the_weighted_sum_of_products(tiny_config: dict) -> None:
    _cfg, setup, sim = setup_for(tiny_config, ["strategy.name=flora", *TIERS, "clients.per_round=3"])
    model, strategy = setup.model, sim.strategy
    pair = strategy.pairs[0]
    layer = model.get_submodule(pair.module)
    w0 = layer.get_base_layer().weight.detach().clone()
    out = sim.run_round(1)
    assert out.status == "ok"
    stack = strategy.history[0]
    scale = float(layer.scaling["default"])
    assert torch.allclose(layer.get_base_layer().weight - w0, scale * product(stack[pair.a], stack[pair.b]), atol=1e-6)
    # the adapter restarts from its init: B back at zero, so the merged base alone carries the update
    assert torch.count_nonzero(strategy.global_state[pair.b]) == 0
    # a client that missed the round receives what it needs to catch up (stacks or merged layers)
    late = next(c for c in sim.client_ids if c not in out.sampled)
    tensors, config = strategy.downlink(2, late)
    assert config["flora_version"] == 1 and any(k.startswith("flora.") for k in tensors)


def test_flora_saved_run_reloads_to_the_same_predictions(tiny_config: dict, tmp_path: Path) -> None:
    from fedpeft.methods import METHODS
    from fedpeft.model.load import load_model
    from fedpeft.strategy.flora import load_merged

    summary = fedpeft.run(load_config(tiny_config, ["strategy.name=flora", "rounds=2"]))
    folder = Path(summary["run_dir"]) / "adapter"
    cfg = load_config(tiny_config, ["strategy.name=flora"])
    setup = build(cfg)
    base, _tok = load_model(cfg.model.name, "sequence_classification", setup.train.label_names, seed=cfg.seed)
    reloaded = load_merged(METHODS.get("lora").load(base, folder), folder)
    expected = summary["final"]["accuracy"]
    pred = predict(reloaded, setup.test_data, 64)
    assert float(np.mean(pred.predicted == pred.labels)) == expected


def test_personalised_evaluation_is_reproducible_and_reported(tiny_config: dict) -> None:
    over = [
        "strategy.name=fedsa_lora",
        "data.local_test_fraction=0.3",
        "eval.per_client=true",
        "eval.finetune_steps=2",
        "rounds=2",
    ]
    a = fedpeft.run(load_config(tiny_config, over))
    b = fedpeft.run(load_config(tiny_config, over))
    pa, pb = a["per_client"]["personalised"], b["per_client"]["personalised"]
    assert pa == pb and pa["finetune_steps"] == 2 and pa["clients"] == a["per_client"]["clients"]
