"""Fixtures shared by the client tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertConfig, BertModel


@pytest.fixture(scope="module")
def no_dropout_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with dropout off (so that one pass for all and one pass each must agree)."""
    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    for f in tiny_model_dir.iterdir():
        if not f.name.startswith(("config", "model")):
            (folder / f.name).write_bytes(f.read_bytes())
    cfg = BertConfig.from_pretrained(str(tiny_model_dir), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel.from_pretrained(str(tiny_model_dir), config=cfg).save_pretrained(str(folder))
    return folder
