"""The Python API with the caller's own objects: model and tokenizer, a DataFrame or datasets.Dataset, a peft
config object, callbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import fedpeft
from fedpeft.errors import ConfigError


def user_model(folder: Path, labels: int = 2, seed: int = 0):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)  # as fedpeft seeds a head it creates
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    names = ["neg", "pos"][:labels] if labels <= 2 else [str(i) for i in range(labels)]
    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), num_labels=labels, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}
    )
    return model, tokenizer


def test_own_model_data_peft_config_and_callbacks_give_the_configured_runs_numbers(
    tiny_config: dict, tiny_model_dir: Path, reviews_csv: Path
) -> None:
    from peft import LoraConfig

    tiny_config["model"]["pooling"] = "cls"
    by_names = fedpeft.run(tiny_config, progress=False)
    model, tokenizer = user_model(tiny_model_dir)
    seen: dict[str, list] = {"rounds": [], "evaluated": [], "end": []}

    class Watcher:
        def on_round_end(self, record: dict) -> None:
            seen["rounds"].append(record["round"])

        def on_evaluate(self, round_: int, metrics: dict) -> None:
            seen["evaluated"].append((round_, metrics["accuracy"]))

        def on_run_end(self, summary: dict) -> None:
            seen["end"].append(summary["final"]["accuracy"])

    records: list[dict] = []
    config = {**tiny_config, "peft": {"method": "ia3"}}  # (peft_config= replaces the peft section)
    by_objects = fedpeft.run(
        config,
        progress=False,
        model=model,
        tokenizer=tokenizer,
        data=pd.read_csv(reviews_csv),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]),
        callbacks=[Watcher(), records.append],
    )
    # the same model, data and method: the same run, up to the LoRA matrices' random start (drawn after the
    # head's when fedpeft loads the model, straight after the seed when the caller did)
    assert by_objects["final"]["accuracy"] == by_names["final"]["accuracy"]
    assert by_objects["final"]["loss"] == pytest.approx(by_names["final"]["loss"], abs=1e-3)
    assert by_objects["data"] == {**by_names["data"], "dataset": "python:DataFrame"}
    saved = yaml.safe_load((Path(by_objects["run_dir"]) / "config.yaml").read_text())
    assert saved["peft"]["alpha"] == 8 and saved["model"]["name"] == str(tiny_model_dir)
    assert any("lora_A" in n for n, _ in model.named_parameters())  # adapted in place
    assert seen["rounds"] == [0, 1, 2] and [r["round"] for r in records] == [0, 1, 2]
    assert [r for r, _ in seen["evaluated"]] == [0, 1, 2] and seen["end"] == [by_objects["final"]["accuracy"]]
    card = json.loads((Path(by_objects["run_dir"]) / "adapter" / "adapter_config.json").read_text())
    assert card["base_model_name_or_path"] == str(tiny_model_dir)


def test_a_datasets_dataset_is_read_like_a_dataframe(tiny_config: dict, reviews_csv: Path) -> None:
    import datasets

    frame = pd.read_csv(reviews_csv)
    config = {**tiny_config, "rounds": 1}
    a = fedpeft.run(config, progress=False, data=frame)
    b = fedpeft.run(config, progress=False, data=datasets.Dataset.from_pandas(frame))
    assert a["final"] == b["final"] and a["data"]["train_examples"] == b["data"]["train_examples"]


def test_objects_that_do_not_fit_are_refused_by_name(tiny_config: dict, tiny_model_dir: Path) -> None:
    from peft import LNTuningConfig

    model, tokenizer = user_model(tiny_model_dir, labels=3)
    with pytest.raises(ConfigError, match="classifies into 3 labels, the data has 2 .* num_labels=2"):
        fedpeft.run(tiny_config, progress=False, model=model, tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="without tokenizer="):
        fedpeft.run(tiny_config, progress=False, model=model)
    with pytest.raises(ConfigError, match="a LNTuningConfig has no fedpeft equivalent"):
        fedpeft.run(tiny_config, progress=False, peft_config=LNTuningConfig(target_modules=["LayerNorm"]))
    with pytest.raises(Exception, match="takes a pandas DataFrame or a datasets.Dataset"):
        fedpeft.run(tiny_config, progress=False, data=[1, 2, 3])


def test_peft_options_fedpeft_would_drop_are_refused() -> None:
    from peft import LoraConfig

    from fedpeft.methods.from_peft import section

    with pytest.raises(ConfigError, match="has no bias, init_lora_weights"):
        section(LoraConfig(r=4, bias="all", init_lora_weights="gaussian"))
    assert section(LoraConfig(r=4, layers_to_transform=[0, 1]))["layers"] == [0, 1]
