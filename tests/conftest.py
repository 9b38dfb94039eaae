"""Shared fixtures: a tiny BERT saved as a local model folder and small, learnable text datasets."""

from __future__ import annotations

import os

# Tests never download: set before transformers / datasets / huggingface_hub read them at import.
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
# The tests' runs share cores among themselves only, not with whatever else runs on the machine.
os.environ.setdefault("FEDPEFT_CORES_DIR", __import__("tempfile").mkdtemp(prefix="fedpeft-test-cores-"))

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

POSITIVE = ["good", "great", "fine", "superb", "lovely", "fun"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring", "weak"]
NEUTRAL = ["the", "movie", "plot", "actor", "scene", "film", "story", "was", "very", "a"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with its own word-level vocabulary, saved like any Hugging Face folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *NEUTRAL]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(str(folder))
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(str(folder))
    return folder


def make_reviews(n: int, seed: int = 0, clients: int = 6) -> pd.DataFrame:
    """Short synthetic reviews whose label is given by their sentiment words; a 'shop' column per client."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(NEUTRAL, size=4)) + list(rng.choice(POSITIVE if label else NEGATIVE, size=2))
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "stars": "pos" if label else "neg", "shop": f"shop{i % clients}"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    make_reviews(240).to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_config(tiny_model_dir: Path, reviews_csv: Path, tmp_path: Path) -> dict:
    """A complete run config on the tiny model and the synthetic reviews: seconds to run."""
    return {
        "name": "tiny",
        "seed": 0,
        "rounds": 2,
        "threads": 1,
        "data": {
            "dataset": "csv",
            "path": str(reviews_csv),
            "text_column": "review",
            "label_column": "stars",
            "client_column": "shop",
            "test_fraction": 0.25,
            "max_length": 16,
        },
        "partition": {"method": "natural"},
        "model": {"name": str(tiny_model_dir)},
        "peft": {"method": "lora", "r": 4, "alpha": 8, "target_modules": ["query", "value"]},
        "clients": {"per_round": 3, "local_steps": 3, "batch_size": 8, "lr": 0.01},
        "eval": {"every": 1, "batch_size": 64},
        "output": {"dir": str(tmp_path / "runs"), "plot": False},
    }


def _outputs(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture
def check_method():  # type: ignore[no-untyped-def]
    """The invariants every PEFT method keeps on any model (see tests/methods/test_model_kinds.py)."""
    from collections.abc import Callable

    from torch import nn

    from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
    from fedpeft.config.schema import ClientConfig
    from fedpeft.data import ClientDataset
    from fedpeft.errors import ModelError
    from fedpeft.fleet import LocalFleet
    from fedpeft.methods import METHODS
    from fedpeft.model import TrainableState
    from fedpeft.pipeline import codec
    from fedpeft.runtime import Simulator
    from fedpeft.strategy.fedavg import FedAvg

    def check_method(
        name: str,
        cfg: object,
        task: str,
        make: Callable[[], nn.Module],
        data: ClientDataset,
        tmp_path: Path,
        refused: str | None = None,
        lr: float = 0.05,
    ) -> None:
        """One federated round of one client, then the invariants every method must keep (or its refusal)."""
        spec, model = METHODS.get(name), make()
        if refused is not None:
            with pytest.raises(ModelError, match=refused):
                spec.apply(model, cfg, task)
            return
        if spec.calibrate is not None:
            model, _info = spec.calibrate(model, cfg, task, [iter([data.batch(np.arange(min(6, len(data))))])])
        else:
            model = spec.apply(model, cfg, task)
        trainable = TrainableState(model)
        start = trainable.snapshot()
        frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
        trainer = LocalTrainer(model, trainable, ClientConfig(local_steps=3, batch_size=4, lr=lr))
        strategy = FedAvg(per_round=1)
        strategy.initialize(start, num_clients=1)
        client = FederatedClient(
            trainer,
            trainable,
            {"c0": data},
            ClientStateStore(tmp_path / "state"),
            seed=0,
            plugins=strategy.client_plugins(),
        )
        sim = Simulator(strategy, LocalFleet(client), ["c0"], seed=0)

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
        loaded = spec.load(make(), tmp_path / "adapter")
        batch = data.batch(np.arange(min(5, len(data))))
        torch.testing.assert_close(_outputs(loaded, batch), _outputs(model, batch), atol=1e-5, rtol=1e-5)

    return check_method
