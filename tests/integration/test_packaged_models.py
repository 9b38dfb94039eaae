"""The packaged SmolLM2 decoder and MobileNetV2 CNN load with their real weights and train federated."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
from fedpeft.config.names import resolve
from fedpeft.config.schema import ClientConfig
from fedpeft.data import ArrayDataset, CausalLMDataset, ClientDataset
from fedpeft.fleet import LocalFleet
from fedpeft.methods import METHODS
from fedpeft.methods.lora import LoraMethod
from fedpeft.model import TrainableState
from fedpeft.model.load import load_model
from fedpeft.runtime import Simulator
from fedpeft.strategy.fedavg import FedAvg

pytestmark = pytest.mark.integration

LINES = [
    "To be, or not to be, that is the question.",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "Water boils at one hundred degrees Celsius at sea level.",
]


def mean_loss(model: torch.nn.Module, data: ClientDataset) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(**data.batch(np.arange(len(data)))).loss)


def one_round(model: torch.nn.Module, data: ClientDataset, tmp_path: Path, lr: float) -> float:
    """One federated round of one client; returns the loss on its data after the round."""
    state = TrainableState(model)
    trainer = LocalTrainer(model, state, ClientConfig(local_steps=4, batch_size=len(data), lr=lr))
    strategy = FedAvg(per_round=1)
    strategy.initialize(state.snapshot(), num_clients=1)
    client = FederatedClient(
        trainer, state, {"c0": data}, ClientStateStore(tmp_path), seed=0, plugins=strategy.client_plugins()
    )
    sim = Simulator(strategy, LocalFleet(client), ["c0"], seed=0)
    assert sim.run_round(1).status == "ok"
    state.load(sim.global_state)
    return mean_loss(model, data)


def test_smollm2_is_a_real_pretrained_decoder_and_lora_trains_it(tmp_path: Path) -> None:
    model, tok = load_model("smollm2", "causal_lm", [], seed=0)  # converts the GGUF file once
    started = time.perf_counter()
    model, tok = load_model("smollm2", "causal_lm", [], seed=0, num_layers=2)
    assert time.perf_counter() - started < 30  # the cached folder, not a second conversion
    ids = [tok(line)["input_ids"] for line in LINES]  # type: ignore[operator]
    data = CausalLMDataset(ids, np.zeros(len(ids), dtype=int), pad_id=int(tok.pad_token_id))  # type: ignore[attr-defined]
    full, _ = load_model("smollm2", "causal_lm", [], seed=0)
    assert sum(p.numel() for p in full.parameters()) == 134_515_008
    assert mean_loss(full, data) < 4.5  # a pretrained LM; random weights give about ln(49152) = 10.8
    lora = METHODS.get("lora").apply(model, LoraMethod(r=4), "causal_lm")
    before = mean_loss(lora, data)
    after = one_round(lora, data, tmp_path, lr=5e-3)
    assert after < before


def test_mobilenet_v2_loads_imagenet_weights_and_lora_trains_it(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:32], dtype=torch.float32).div(16).unsqueeze(1).repeat(1, 3, 1, 1)
    x = torch.nn.functional.interpolate(x, size=64, mode="bilinear")
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean[:, None, None]) / std[:, None, None]  # ImageNet normalisation
    data = ArrayDataset({"pixel_values": x, "labels": torch.tensor(digits.target[:32])})
    model, _ = load_model("mobilenet_v2", "image_classification", [str(i) for i in range(10)], seed=0)
    weights = torch.load(resolve("mobilenet_v2"), weights_only=True)
    assert torch.equal(model.state_dict()["features.0.0.weight"], weights["features.0.0.weight"])
    assert model.classifier[1].out_features == 10  # type: ignore[index]  # a new head for the task
    lora = METHODS.get("lora").apply(model, LoraMethod(r=4), "image_classification")
    before = mean_loss(lora, data)
    after = one_round(lora, data, tmp_path, lr=3e-3)
    assert after < before


TINY_OPTIONS = {
    "fourierft": {"options": {"n_frequency": 64}},
    "prompt": {"num_virtual_tokens": 4},
    "prefix": {"num_virtual_tokens": 4},
    "p_tuning": {"options": {"num_virtual_tokens": 4}},
}
REFUSED = {
    ("smollm2", "bitfit"): "no bias parameters",
    ("smollm2", "head"): "no new task head",
    **{("mobilenet_v2", m): "needs token embeddings" for m in ("prompt", "prefix", "p_tuning")},
    ("mobilenet_v2", "vera"): "linear layers only",
    ("mobilenet_v2", "fourierft"): "only the following modules are supported",
}


@pytest.fixture(scope="module")
def packaged() -> dict:
    """The two packaged non-encoder models (SmolLM2 cut to 2 blocks) and a few real examples for each."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    lm, tok = load_model("smollm2", "causal_lm", [], seed=0, num_layers=2)
    ids = [tok(line)["input_ids"] for line in LINES]  # type: ignore[operator]
    digits = load_digits()
    x = torch.tensor(digits.images[:8], dtype=torch.float32).div(16).unsqueeze(1).repeat(1, 3, 1, 1)
    return {
        "smollm2": (lm, CausalLMDataset(ids, np.zeros(len(ids), dtype=int), pad_id=int(tok.pad_token_id))),  # type: ignore[attr-defined]
        "mobilenet_v2": (
            load_model("mobilenet_v2", "image_classification", [str(i) for i in range(10)], seed=0)[0],
            ArrayDataset(
                {"pixel_values": torch.nn.functional.interpolate(x, size=32), "labels": torch.tensor(digits.target[:8])}
            ),
        ),
    }


@pytest.mark.parametrize("model_name", ["smollm2", "mobilenet_v2"])
@pytest.mark.parametrize("method", sorted(METHODS.names()))
def test_every_method_on_the_packaged_models(
    packaged: dict, model_name: str, method: str, tmp_path: Path, check_method
) -> None:  # type: ignore[no-untyped-def]
    import copy

    from pydantic import TypeAdapter

    from fedpeft.config.methods import PeftMethodConfig

    base, data = packaged[model_name]
    cfg = TypeAdapter(PeftMethodConfig).validate_python({"method": method, **TINY_OPTIONS.get(method, {})})
    task = "causal_lm" if model_name == "smollm2" else "image_classification"
    check_method(
        method,
        cfg,
        task,
        lambda: copy.deepcopy(base),
        data,
        tmp_path,
        refused=REFUSED.get((model_name, method)),
        lr=1e-3,
    )
