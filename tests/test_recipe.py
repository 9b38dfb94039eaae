"""End to end on the tiny local model: outputs, reproducibility, saved adapter, per-client evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel

import fedpeft
from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.evaluation import predict
from fedpeft.model import load_sequence_classifier
from fedpeft.pipeline import codec


def test_run_writes_every_output_and_counts_real_bytes(tiny_config: dict) -> None:
    tiny_config["output"]["plot"] = True
    summary = fedpeft.run(tiny_config, progress=False)
    run = Path(summary["run_dir"])
    for name in [
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "partition.json",
        "curves.png",
        "partition.png",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ]:
        assert (run / name).is_file(), name
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["round"] for x in lines] == [0, 1, 2]
    assert all(x["status"] == "ok" and x["accepted"] == 3 for x in lines[1:])
    # bytes: every update and every download is one safetensors payload of the trainable state
    setup = build(load_config(tiny_config))
    size = len(codec.encode(setup.trainable.snapshot()))
    assert all(x["bytes_up"] == x["bytes_down"] == 3 * size for x in lines[1:])
    assert summary["ledger"]["bytes_up"] == 6 * size
    assert summary["ledger"]["trainable_params"] == setup.trainable.numel()
    assert json.loads((run / "summary.json").read_text())["final"] == summary["final"]
    part = json.loads((run / "partition.json").read_text())
    assert len(part["clients"]) == 6 and all(sum(c["labels"]) == c["size"] for c in part["clients"])
    assert load_config(run / "config.yaml").clients.per_round == 3


MEASURED = ("train_seconds", "cpu_seconds", "peak_mb", "energy_wh_estimate")  # timings and memory vary run to run


def deterministic(line: str) -> dict:
    """A metrics.jsonl record without what is measured (times, memory); bytes, samples, FLOPs stay."""
    record = {k: v for k, v in json.loads(line).items() if k != "seconds"}
    record["clients"] = {
        c: {k: v for k, v in cost.items() if k not in MEASURED} for c, cost in (record.get("clients") or {}).items()
    }
    return record


def test_same_seed_same_numbers_and_other_seed_differs(tiny_config: dict) -> None:
    a = fedpeft.run(tiny_config, progress=False)
    b = fedpeft.run(tiny_config, progress=False)
    c = fedpeft.run(tiny_config, ["seed=1"], progress=False)
    assert Path(a["run_dir"]) != Path(b["run_dir"])  # a second run never overwrites the first
    assert a["final"] == b["final"]
    ma = Path(a["run_dir"], "metrics.jsonl").read_text().splitlines()
    mb = Path(b["run_dir"], "metrics.jsonl").read_text().splitlines()
    assert [deterministic(x) for x in ma] == [deterministic(x) for x in mb]
    assert c["final"] != a["final"]


def test_federated_training_learns_the_task(tiny_config: dict) -> None:
    overrides = ["rounds=6", "clients.per_round=6", "clients.local_steps=6", "clients.lr=0.03", "model.pooling=mean"]
    summary = fedpeft.run(tiny_config, overrides, progress=False)
    assert summary["final"]["accuracy"] >= 0.85 > 0.6 > summary["initial"]["accuracy"]


def test_saved_adapter_reproduces_predictions_with_peft(tiny_config: dict, tiny_model_dir: Path) -> None:
    summary = fedpeft.run(tiny_config, progress=False)
    cfg = load_config(tiny_config)
    setup = build(cfg)
    base, _ = load_sequence_classifier(str(tiny_model_dir), setup.train.label_names, seed=123)
    reloaded = PeftModel.from_pretrained(base, str(Path(summary["run_dir"]) / "adapter"))
    # the run's final model: rebuild it and load the final global state from the saved adapter
    pred = predict(reloaded, setup.test_data, 64)
    meta = json.loads((Path(summary["run_dir"]) / "adapter" / "fedpeft.json").read_text())
    assert meta["label_names"] == ["neg", "pos"]
    assert (
        pred.predicted.tolist() != []
        and abs((pred.predicted == pred.labels).mean() - summary["final"]["accuracy"]) < 1e-9
    )
    assert abs(pred.losses.mean() - summary["final"]["loss"]) < 1e-5


def test_per_client_evaluation_reports_spread(tiny_config: dict) -> None:
    summary = fedpeft.run(tiny_config, ["data.local_test_fraction=0.25", "eval.per_client=true"], progress=False)
    pc = summary["per_client"]
    assert pc["clients"] == 6 and 0.0 <= pc["worst_10pct"] <= pc["mean"] <= 1.0
    last = json.loads(Path(summary["run_dir"], "metrics.jsonl").read_text().splitlines()[-1])
    assert set(last["per_client"]["by_client"]) == {f"shop{i}" for i in range(6)}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_both_poolings_train(tiny_config: dict, pooling: str) -> None:
    summary = fedpeft.run(tiny_config, [f"model.pooling={pooling}", "rounds=1"], progress=False)
    assert summary["ledger"]["rounds"] == 1 and np.isfinite(summary["final"]["loss"])


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_full_finetuning_baseline_sends_and_saves_every_parameter(
    tiny_config: dict, tiny_model_dir: Path, pooling: str
) -> None:
    from fedpeft.methods import METHODS

    summary = fedpeft.run(tiny_config, ["peft.method=full", "rounds=1", f"model.pooling={pooling}"], progress=False)
    led = summary["ledger"]
    assert led["trainable_params"] == led["total_params"]
    assert led["bytes_up"] > 3 * 4 * led["total_params"]
    base, _ = load_sequence_classifier(str(tiny_model_dir), ["neg", "pos"], seed=5, pooling=pooling)
    model = METHODS.get("full").load(base, Path(summary["run_dir"]) / "adapter")
    setup = build(load_config(tiny_config, [f"model.pooling={pooling}"]))
    pred = predict(model, setup.test_data, 64)
    assert abs(pred.losses.mean() - summary["final"]["loss"]) < 1e-5


def test_all_updates_failing_is_recorded_not_raised(tiny_config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from fedpeft.client import FederatedClient

    def boom(self, ins):  # type: ignore[no-untyped-def]
        raise RuntimeError("client offline")

    monkeypatch.setattr(FederatedClient, "fit", boom)
    summary = fedpeft.run(tiny_config, progress=False)
    assert summary["ledger"]["failed_rounds"] == 2
    assert summary["final"] == summary["initial"]


def test_local_model_path_that_does_not_exist_is_clear(tiny_config: dict) -> None:
    from fedpeft.errors import ModelError

    with pytest.raises(ModelError, match="model.name='/no/such/model': no such file or folder"):
        fedpeft.run(tiny_config, ["model.name=/no/such/model"], progress=False)


def test_bad_lora_targets_list_the_linear_layers(tiny_config: dict) -> None:
    from fedpeft.errors import ModelError

    with pytest.raises(ModelError, match="query"):
        fedpeft.run(tiny_config, ["peft.target_modules=[nope]"], progress=False)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_default_lora_targets_come_from_peft_per_architecture(tiny_config: dict, pooling: str) -> None:
    tiny_config["peft"].pop("target_modules")
    setup = build(load_config(tiny_config, [f"model.pooling={pooling}"]))
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in setup.trainable.names if ".lora_" in n}
    assert adapted == {"query", "value"}  # peft's default for BERT
    assert any("classifier" in n for n in setup.trainable.names)


def test_fisher_mask_is_agreed_by_a_seeded_client_sample_and_reported(tiny_config: dict) -> None:
    overrides = [
        "peft.method=sparse",
        "peft.selection=fisher",
        "peft.density=0.1",
        "peft.fisher_clients=2",
        "peft.fisher_examples=8",
        "rounds=1",
    ]
    a, b = build(load_config(tiny_config, overrides)), build(load_config(tiny_config, overrides))
    assert a.method_setup["clients"] == 2 and a.method_setup["bytes_up_once"] > 0
    masks = [
        {n: m.parametrizations.weight[0].index for n, m in s.model.named_modules() if hasattr(m, "parametrizations")}
        for s in (a, b)
    ]
    assert masks[0].keys() == masks[1].keys() and all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    summary = fedpeft.run(load_config(tiny_config, overrides), progress=False)
    assert summary["model"]["setup"]["mask_selection"] == "fisher"
    from fedpeft.report import summary_text

    assert "Fisher scores of 2 clients" in summary_text(summary)


def test_cut_down_model_and_non_text_models_in_run(tiny_config: dict) -> None:
    from fedpeft.errors import ConfigError

    setup = build(load_config(tiny_config, ["model.num_layers=1"]))
    from fedpeft.model.anatomy import body_blocks

    assert len(body_blocks(setup.model)[1]) == 1
    with pytest.raises(
        ConfigError, match="holds labelled texts, but model.name=.smollm2. is a causal lm model: set model.name=minilm"
    ):
        build(load_config(tiny_config, ["model.name=smollm2"]))


@pytest.mark.parametrize(
    "bad, error",
    [
        (["model.name=nobody/no-such-model"], "not in the Hugging Face cache"),  # refused before the folder
        (["strategy.name=flora", "clients.workers=2"], "writes to the shared model"),  # refused while building
    ],
)
def test_a_refused_run_leaves_no_folder(tiny_config: dict, bad: list[str], error: str) -> None:
    from fedpeft.errors import FedPeftError

    out = Path(tiny_config["output"]["dir"])
    first = fedpeft.run(tiny_config, ["rounds=1"], progress=False)  # an earlier run's folder stays untouched
    with pytest.raises(FedPeftError, match=error):
        fedpeft.run(tiny_config, bad, progress=False)
    with pytest.raises(FedPeftError, match=error):
        fedpeft.run(tiny_config, [*bad, "output.overwrite=true"], progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]
    assert (Path(first["run_dir"]) / "summary.json").is_file()


def test_an_unwritable_output_dir_is_one_clear_error(tiny_config: dict, tmp_path: Path) -> None:
    from fedpeft.errors import ConfigError

    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"output.dir='.*a-file/runs': cannot write .* a folder you can write"):
        fedpeft.run(tiny_config, [f"output.dir={tmp_path / 'a-file' / 'runs'}"], progress=False)


def test_more_clients_per_round_than_clients_is_a_warning(tiny_config: dict, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="fedpeft"):
        summary = fedpeft.run(tiny_config, ["rounds=1", "clients.per_round=500"], progress=False)
    assert f"clients.per_round=500 is more than the {summary['clients_per_round']} clients" in caplog.text


def test_progress_false_prints_nothing_and_lines_prints_rounds(tiny_config: dict, capsys) -> None:  # type: ignore[no-untyped-def]
    fedpeft.run(tiny_config, ["rounds=1"], progress=False)
    out = capsys.readouterr()
    assert out.out == "" and "round" not in out.err
    fedpeft.run(tiny_config, ["rounds=1"], progress="lines")
    assert "round   1:" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["lora", "bitfit"])  # peft's format and fedpeft's own
def test_load_gives_the_runs_model_tokenizer_and_labels(tiny_config: dict, capsys, method: str) -> None:  # type: ignore[no-untyped-def]
    from fedpeft.cli import main

    summary = fedpeft.run(tiny_config, [f"peft.method={method}", "model.pooling=mean"], progress=False)
    loaded = fedpeft.load(summary["run_dir"])
    model, tokenizer, labels = loaded
    assert labels == ["neg", "pos"] and not model.training and tokenizer is not None
    test = build(load_config(Path(summary["run_dir"]) / "config.yaml")).test
    rows = loaded.predict(test.texts)  # type: ignore[attr-defined]
    accuracy = np.mean([r["label"] == labels[y] for r, y in zip(rows, test.labels)])
    assert accuracy == pytest.approx(summary["final"]["accuracy"], abs=1e-9)
    assert all(0.5 <= r["probability"] <= 1.0 for r in rows)
    assert main(["predict", summary["run_dir"], "good great fun", "awful dull weak"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        r["label"] for r in loaded.predict(["good great fun", "awful dull weak"])
    ]


def test_load_names_what_is_missing(tiny_config: dict, tmp_path: Path) -> None:
    from fedpeft.errors import ConfigError

    with pytest.raises(ConfigError, match="not a fedpeft run folder"):
        fedpeft.load(tmp_path)
    summary = fedpeft.run(tiny_config, ["rounds=1", "output.save_adapter=false"], progress=False)
    with pytest.raises(ConfigError, match="no saved adapter"):
        fedpeft.load(summary["run_dir"])
