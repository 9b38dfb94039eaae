"""Shared fixtures: a tiny BERT saved as a local model folder and small, learnable text datasets."""

from __future__ import annotations

import os

# Tests never download: set before transformers / datasets / huggingface_hub read them at import.
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")

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
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(str(folder))
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
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
            "dataset": "csv", "path": str(reviews_csv), "text_column": "review", "label_column": "stars",
            "client_column": "shop", "test_fraction": 0.25, "max_length": 16,
        },
        "partition": {"method": "natural"},
        "model": {"name": str(tiny_model_dir)},
        "peft": {"method": "lora", "r": 4, "alpha": 8, "target_modules": ["query", "value"]},
        "clients": {"per_round": 3, "local_steps": 3, "batch_size": 8, "lr": 0.01},
        "eval": {"every": 1, "batch_size": 64},
        "output": {"dir": str(tmp_path / "runs"), "plot": False},
    }
