"""Every method x model kind (encoder, decoder, CNN) on tiny models: one federated round with one client
leaves the global state equal to that client's, only trainable tensors travel, frozen ones never change,
and a fresh base plus the saved adapter gives the trained model's outputs. Or a clear refusal."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from fedpeft.config.methods import PeftMethodConfig
from fedpeft.data import ArrayDataset, CausalLMDataset, ClientDataset, TokenizedDataset
from fedpeft.methods import METHODS
from fedpeft.model.load import load_sequence_classifier
from fedpeft.model.mobilenet import MobileNetV2

TASKS = {"encoder": "sequence_classification", "decoder": "causal_lm", "cnn": "image_classification"}
SMALL = {
    "lora": {"r": 2},
    "vera": {"r": 4},
    "houlsby": {"reduction_factor": 4},
    "pfeiffer": {"reduction_factor": 4},
    "prompt": {"num_virtual_tokens": 3},
    "fourierft": {"options": {"n_frequency": 16}},
    "p_tuning": {"options": {"num_virtual_tokens": 3}},
    "prefix": {"num_virtual_tokens": 3},
    "sparse": {"density": 0.05},
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

        return LlamaForCausalLM(
            LlamaConfig(
                vocab_size=40,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=64,
                tie_word_embeddings=True,
                pad_token_id=0,
            )
        )
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


@pytest.mark.parametrize("kind", sorted(TASKS))
@pytest.mark.parametrize("case", CASES)
def test_method_on_model_kind(kind: str, case: str, tiny_model_dir: Path, tmp_path: Path, check_method) -> None:  # type: ignore[no-untyped-def]
    name, cfg = method_config(case)
    check_method(
        name,
        cfg,
        TASKS[kind],
        lambda: make_model(kind, tiny_model_dir),
        make_data(kind),
        tmp_path,
        refused=REFUSED.get((kind, name)),
    )
