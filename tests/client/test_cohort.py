"""Many clients per forward pass: each client's result equals training it alone, for every routed method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import fedpeft
from fedpeft.build import build_client, build_server, build_setup
from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
from fedpeft.client.cohort import stack_batches
from fedpeft.client.messages import FitInstruction
from fedpeft.config import load_config
from fedpeft.config.schema import ClientConfig
from fedpeft.data.batching import CausalLMDataset
from fedpeft.errors import ConfigError
from fedpeft.model.state import TrainableState
from fedpeft.pipeline import codec
from fedpeft.strategy.scaffold.client import ControlVariates
from tests.model.test_device import tiny_llama

METHODS = {
    "lora": ["peft.method=lora", "peft.dropout=0.0"],
    "dora": ["peft.method=lora", "peft.dropout=0.0", "peft.use_dora=true"],
    "rslora": ["peft.method=lora", "peft.dropout=0.0", "peft.use_rslora=true"],
    "ia3": ["peft.method=ia3"],
    "vera": ["peft.method=vera", "peft.dropout=0.0"],
    "houlsby": ["peft.method=houlsby"],
    "pfeiffer": ["peft.method=pfeiffer"],
    "bitfit": ["peft.method=bitfit"],
    "layernorm": ["peft.method=layernorm"],
    "head": ["peft.method=head"],
    "hra": ["peft.method=hra"],
    "top_layers": ["peft.method=top_layers"],
}


def replies(tiny_config: dict, model: Path, tmp_path: Path, overrides: list[str], cohort: bool) -> dict:
    cfg = load_config(
        tiny_config,
        [
            f"model.name={model}",
            "partition.method=quantity",
            "partition.num_clients=4",
            "model.pooling=cls",
            *overrides,
        ],
    )
    setup = build_setup(cfg)
    setup.model.double()  # float64: rounding far below the tolerance, so any real difference shows
    strategy, _ = build_server(setup)
    client = build_client(cfg, setup, strategy, tmp_path / ("c" if cohort else "s"))
    payload = codec.encode(setup.trainable.snapshot())
    ins = [FitInstruction(1, c, payload, {}) for c in setup.client_data]
    got = client.fit_cohort(ins) if cohort else [client.fit(i) for i in ins]
    return {r.client_id: (codec.decode(r.payload, None), r.metrics) for r in got}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_cohort_trains_each_client_as_if_alone(
    method: str, tiny_config: dict, no_dropout_model: Path, tmp_path: Path
) -> None:
    overrides = [*METHODS[method], "clients.local_steps=null", "clients.local_epochs=1", "clients.batch_size=8"]
    alone = replies(tiny_config, no_dropout_model, tmp_path, overrides, cohort=False)
    together = replies(tiny_config, no_dropout_model, tmp_path, overrides, cohort=True)
    steps = {c: m["steps"] for c, (_, m) in alone.items()}
    assert len(set(steps.values())) > 1  # clients of different sizes: some leave the cohort early
    for cid, (update, metrics) in alone.items():
        other, other_metrics = together[cid]
        assert other_metrics["steps"] == metrics["steps"]
        assert other_metrics["train_loss"] == pytest.approx(metrics["train_loss"], abs=1e-6)
        assert max(float(update[k].norm()) for k in update) > 0
        for k in update:
            torch.testing.assert_close(other[k], update[k], rtol=0, atol=1e-5)


def decoder_client(tmp_path: Path, keep: bool) -> tuple[FederatedClient, dict[str, torch.Tensor]]:
    """A tiny Llama with LoRA (float64), three clients of different sizes, SCAFFOLD's client half."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(
        tiny_llama().double(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    )
    rng = np.random.default_rng(0)
    data = {
        f"c{i}": CausalLMDataset(
            [list(rng.integers(5, 39, size=int(rng.integers(4, 12)))) for _ in range(n)], np.full(n, 2), pad_id=0
        )
        for i, n in enumerate([5, 11, 17])
    }
    state = TrainableState(model)
    trainer = LocalTrainer(model, state, ClientConfig(local_epochs=2, batch_size=4, lr=0.01, keep_optimizer_state=keep))
    client = FederatedClient(trainer, state, data, ClientStateStore(tmp_path), 0, plugins=[ControlVariates()])
    start = state.snapshot()
    for n, t in list(start.items()):
        start[ControlVariates.PREFIX_C + n] = 0.01 * torch.randn_like(t)
    return client, start


def test_a_decoder_cohort_with_scaffold_and_kept_moments_matches_over_two_rounds(tmp_path: Path) -> None:
    alone, start = decoder_client(tmp_path / "a", keep=True)
    together, _ = decoder_client(tmp_path / "b", keep=True)
    for round_ in (1, 2):
        ins = [FitInstruction(round_, c, codec.encode(start), {}) for c in alone.data]
        one = {r.client_id: codec.decode(r.payload, None) for r in (alone.fit(i) for i in ins)}
        many = {r.client_id: codec.decode(r.payload, None) for r in together.fit_cohort(ins)}
        for cid, update in one.items():
            assert any(k.startswith(ControlVariates.PREFIX_DC) for k in update)
            for k in update:
                torch.testing.assert_close(many[cid][k], update[k], rtol=0, atol=1e-5)
    assert alone.store.get("c2").keys() == together.store.get("c2").keys()  # moments and c_i kept alike


def test_padding_rows_attend_to_one_token_and_clients_keep_their_rows() -> None:
    a = {
        "input_ids": torch.tensor([[5, 6, 7]]),
        "attention_mask": torch.tensor([[1, 1, 1]]),
        "labels": torch.tensor([1]),
    }
    b = {
        "input_ids": torch.tensor([[8], [9]]),
        "attention_mask": torch.tensor([[1], [1]]),
        "labels": torch.tensor([0, 1]),
    }
    out, rows = stack_batches([a, b], pad_id=7)
    assert rows == 2 and out["input_ids"].shape == (4, 3)
    assert out["input_ids"][1:].tolist() == [[7, 7, 7], [8, 7, 7], [9, 7, 7]]  # the tokenizer's pad id
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert out["labels"][2:].tolist() == [0, 1]


def test_cohorts_refuse_what_they_cannot_route(tiny_config: dict) -> None:
    for bad, why in [
        (["peft.method=prefix"], "past keys"),
        (["peft.method=loha"], "vmap cannot batch"),
        (["peft.method=fourierft"], "vmap cannot batch"),
        (["privacy.dp_sgd.enabled=true", "privacy.dp_sgd.noise_multiplier=1"], "DP-SGD"),
        (["clients.workers=2"], "one client per process"),
        (["precision=fp16"], "gradient scaler per client"),
    ]:
        with pytest.raises(ConfigError, match=f"clients.cohort=4: .*{why}.*clients.cohort: 1"):
            load_config(tiny_config, ["clients.cohort=4", *bad])


def test_a_cohort_run_learns_like_the_sequential_one(tiny_config: dict, no_dropout_model: Path) -> None:
    base = [f"model.name={no_dropout_model}", "peft.dropout=0.0", "strategy.name=scaffold", "rounds=3"]
    one = fedpeft.run(tiny_config, [*base, "clients.keep_optimizer_state=true"], progress=False)
    many = fedpeft.run(tiny_config, [*base, "clients.keep_optimizer_state=true", "clients.cohort=3"], progress=False)
    assert many["final"]["loss"] == pytest.approx(one["final"]["loss"], rel=1e-3)
    assert many["final"]["accuracy"] == pytest.approx(one["final"]["accuracy"], abs=0.02)
