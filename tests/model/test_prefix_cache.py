"""Frozen-prefix activation caching: same results as computing the frozen blocks every time."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import fedpeft
from fedpeft.build import build_setup as build
from fedpeft.config.load import load_config
from fedpeft.errors import ModelError


@pytest.fixture(scope="module")
def no_dropout_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT without dropout: the uncached run is then deterministic in its frozen blocks too."""
    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


METHODS = {
    "top_layers": {"method": "top_layers", "k": 1},
    "head": {"method": "head"},
    "lora-upper": {"method": "lora", "r": 4, "target_modules": ["query", "value"], "layers": [1]},
}


@pytest.mark.parametrize("method", list(METHODS))
def test_cached_run_equals_the_uncached_run(method: str, tiny_config: dict, no_dropout_model_dir: Path) -> None:
    base = {
        **tiny_config,
        "model": {"name": str(no_dropout_model_dir), "pooling": "mean"},
        "peft": METHODS[method],
        "rounds": 3,
    }
    plain = fedpeft.run(base, progress=False)
    cached = fedpeft.run(base, ["model.cache_frozen_prefix=true"], progress=False)
    assert cached["final"]["accuracy"] == plain["final"]["accuracy"]
    assert cached["final"]["loss"] == pytest.approx(plain["final"]["loss"], abs=1e-5)
    depth = 2 if method == "head" else 1
    stats = cached["model"]["prefix_cache"]
    assert stats["blocks"] == depth and stats["hits"] > stats["misses"] > 0
    assert plain["model"]["prefix_cache"] is None
    assert cached["ledger"]["flops"] < 0.9 * plain["ledger"]["flops"]  # steady-state steps skip the prefix


def test_cache_holds_each_example_once_and_keeps_parameters_in_place(tiny_config: dict) -> None:
    cfg = load_config(
        {**tiny_config, "peft": METHODS["top_layers"], "model": {**tiny_config["model"], "cache_frozen_prefix": True}}
    )
    setup = build(cfg)
    names = [n for n, _ in setup.model.named_parameters()]
    assert any(".layer.0." in n for n in names)  # the cached block's weights are still part of the model
    batch = setup.test_data.batch(torch.arange(8).numpy())
    setup.model.eval()
    first = setup.model(**batch).logits
    second = setup.model(**batch).logits
    cache = setup.prefix_cache
    assert cache is not None and torch.equal(first, second)
    assert (
        cache.misses == 8
        and cache.hits == 8
        and cache.stats()["examples"]
        == len({tuple(r[m.bool()].tolist()) for r, m in zip(batch["input_ids"], batch["attention_mask"])})
    )


@pytest.mark.parametrize(
    "peft",
    [{"method": "lora", "r": 4, "target_modules": ["query", "value"]}, {"method": "prompt", "num_virtual_tokens": 4}],
)
def test_refused_when_the_lowest_block_or_the_input_trains(peft: dict, tiny_config: dict) -> None:
    cfg = load_config({**tiny_config, "peft": peft, "model": {**tiny_config["model"], "cache_frozen_prefix": True}})
    with pytest.raises(ModelError, match="cache_frozen_prefix"):
        build(cfg)
