"""A run's adapter folder loads in transformers and peft alone: the base's id, the labels, the mean-pooling
head as remote code, and a model card that says how."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fedpeft
from fedpeft.build import build_setup
from fedpeft.config import load_config
from fedpeft.evaluation import predict


@pytest.mark.parametrize("method", ["lora", "ia3", "prefix"])
def test_mean_pooled_adapters_load_through_automodel_with_the_runs_loss(
    tiny_config: dict, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    from transformers import AutoModelForSequenceClassification

    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    summary = fedpeft.run(tiny_config, ["model.pooling=mean", f"peft.method={method}"], progress=False)
    adapter = Path(summary["run_dir"]) / "adapter"
    config = json.loads((adapter / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["fedpeft_base_model"] == str(tiny_model_dir)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(adapter), trust_remote_code=True)
    setup = build_setup(load_config(Path(summary["run_dir"]) / "config.yaml"))
    pred = predict(model, setup.test_data, 64)
    assert pred.losses.mean() == pytest.approx(summary["final"]["loss"], abs=1e-5)
    card = (adapter / "README.md").read_text()
    assert f"base_model: {tiny_model_dir}" in card and "trust_remote_code=True" in card and "labels: neg, pos" in card


def test_first_token_heads_need_no_remote_code_and_name_their_labels(tiny_config: dict) -> None:
    summary = fedpeft.run(tiny_config, ["model.pooling=cls"], progress=False)
    adapter = Path(summary["run_dir"]) / "adapter"
    assert not (adapter / "config.json").exists() and not (adapter / "modeling_fedpeft.py").exists()
    card = (adapter / "README.md").read_text()
    assert "AutoPeftModelForSequenceClassification" in card and "{0: 'neg', 1: 'pos'}" in card
    assert json.loads((adapter / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
