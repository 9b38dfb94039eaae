"""Every method x model kind (encoder, decoder, CNN) on tiny models: one federated round with one client
leaves the global state equal to that client's, only trainable tensors travel, frozen ones never change,
and a fresh base plus the saved adapter gives the trained model's outputs. Or a clear refusal."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
from fedpeft.config.methods import PeftMethodConfig
from fedpeft.config.schema import ClientConfig
from fedpeft.data import ArrayDataset, CausalLMDataset, ClientDataset, TokenizedDataset
from fedpeft.errors import ModelError
from fedpeft.methods import METHODS
from fedpeft.model import TrainableState
from fedpeft.model.load import load_sequence_classifier
from fedpeft.model.mobilenet import MobileNetV2
from fedpeft.pipeline import codec
from fedpeft.runtime import Simulator
from fedpeft.strategy.fedavg import FedAvg

TASKS = {"encoder": "sequence_classification", "decoder": "causal_lm", "cnn": "image_classification"}
SMALL = {
    "lora": {"r": 2}, "vera": {"r": 4}, "houlsby": {"reduction_factor": 4}, "pfeiffer": {"reduction_factor": 4},
    "prompt": {"num_virtual_tokens": 3}, "fourierft": {"options": {"n_frequency": 16}},
    "p_tuning": {"options": {"num_virtual_tokens": 3}}, "prefix": {"num_virtual_tokens": 3}, "sparse": {"density": 0.05},
}
CASES = sorted(METHODS.names()) + ["sparse-fisher", "sparse-random"]
REFUSED = {
    ("decoder", "bitfit"): "no bias parameters",
    ("decoder", "head"): "no new task head",
    ("cnn", "prompt"): "needs token embeddings",
    ("cnn", "prefix"): "needs token embeddings",
    ("cnn", "p_tuning"): "needs token embeddings",
    ("cnn", "fourierft"): "only the following modules are supported",
    ("cnn", "vera"): "linear layers only",
}


def make_model(kind: str, tiny_model_dir: Path) -> nn.Module:
    torch.manual_seed(0)
    if kind == "encoder":
        return load_sequence_classifier(str(tiny_model_dir), ["neg", "pos"], seed=1, pooling="cls")[0]
    if kind == "decoder":
        from transformers import LlamaConfig, LlamaForCausalLM

        return LlamaForCausalLM(LlamaConfig(
            vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True, pad_token_id=0,
        ))
    return MobileNetV2(num_labels=3, width_mult=0.25)


def make_data(kind: str) -> ClientDataset:
    rng = np.random.default_rng(0)
    if kind == "cnn":
        return ArrayDataset({"pixel_values": torch.randn(12, 3, 32, 32), "labels": torch.randint(0, 3, (12,))})
    rows = [list(rng.integers(5, 27, size=int(rng.integers(4, 9)))) for _ in range(12)]
    if kind == "decoder":
        return CausalLMDataset(rows, np.full(12, 2), pad_id=0)
    return TokenizedDataset(rows, rng.integers(0, 2, size=12), pad_id=0)


def method_config(case: str) -> tuple[str, object]:
    name, _, selection = case.partition("-")
    fields = {"method": name, **SMALL.get(name, {}), **({"selection": selection} if selection else {})}
    return name, TypeAdapter(PeftMethodConfig).validate_python(fields)


def outputs(model: nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("kind", sorted(TASKS))
@pytest.mark.parametrize("case", CASES)
def test_method_on_model_kind(kind: str, case: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    name, cfg = method_config(case)
    spec, task, data = METHODS.get(name), TASKS[kind], make_data(kind)
    model = make_model(kind, tiny_model_dir)
    if (kind, name) in REFUSED:
        with pytest.raises(ModelError, match=REFUSED[(kind, name)]):
            spec.apply(model, cfg, task)
        return
    if spec.calibrate is not None:
        model, _info = spec.calibrate(model, cfg, task, [iter([data.batch(np.arange(6))])])
    else:
        model = spec.apply(model, cfg, task)
    trainable = TrainableState(model)
    start = trainable.snapshot()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainer = LocalTrainer(model, trainable, ClientConfig(local_steps=3, batch_size=4, lr=0.05))
    client = FederatedClient(trainer, trainable, {"c0": data}, ClientStateStore(tmp_path / "state"), seed=0)
    sim = Simulator(client, FedAvg(per_round=1), ["c0"], start, seed=0)

    outcome = sim.run_round(1)

    assert outcome.status == "ok"
    client_state = trainable.snapshot()  # the shared model still holds what the client trained
    for n, value in sim.global_state.items():
        torch.testing.assert_close(value, client_state[n], atol=1e-6, rtol=0)
    assert any(not torch.equal(start[n], client_state[n]) for n in start), "training changed nothing"
    assert outcome.bytes_up == len(codec.encode(start))  # exactly one payload of the trainable tensors
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen {n} changed"
    spec.save(model, tmp_path / "adapter", cfg, task)
    loaded = spec.load(make_model(kind, tiny_model_dir), tmp_path / "adapter")
    batch = data.batch(np.arange(5))
    torch.testing.assert_close(outputs(loaded, batch), outputs(model, batch), atol=1e-5, rtol=1e-5)
