"""The real packaged MiniLM on small slices of the real Rotten Tomatoes data."""

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel

import fedpeft
from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.evaluation import metrics, predict
from fedpeft.model import load_sequence_classifier

pytestmark = pytest.mark.integration

QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
SMALL = [
    "rounds=2",
    "clients.per_round=3",
    "clients.local_steps=2",
    "data.max_train_examples=600",
    "data.max_test_examples=64",
    "data.max_length=32",
    "partition.min_examples_per_client=1",
    "output.plot=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("runs")
    return fedpeft.run(QUICKSTART, [*SMALL, f"output.dir={out}"], progress=False)


def test_quickstart_slice_runs_on_the_real_model_and_data(run: dict) -> None:
    led = run["ledger"]
    assert run["model"] == {
        "name": "minilm",
        "method": "lora",
        "family": "reparameterised",
        "setup": {},
        "prefix_cache": None,
    }
    assert 300_000 < led["trainable_params"] < 400_000 and led["total_params"] > 22_000_000
    # LoRA on every BERT linear layer plus the head: about 1.4 MB of float32 deltas per client update
    per_update = led["bytes_up"] / (2 * 3)
    assert 4 * led["trainable_params"] < per_update < 4 * led["trainable_params"] * 1.05
    assert run["data"]["partition"] == "natural" and run["data"]["num_clients"] > 100
    assert led["failed_rounds"] == 0 and run["final"] != run["initial"]


def test_saved_adapter_loads_with_peft_and_gives_the_same_predictions(run: dict) -> None:
    cfg = load_config(Path(run["run_dir"]) / "config.yaml")
    setup = build(cfg)
    adapter = Path(run["run_dir"]) / "adapter"
    cfg_json = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg_json["peft_type"] == "LORA" and cfg_json["r"] == 8
    base, _ = load_sequence_classifier("minilm", ["rotten", "fresh"], seed=99)
    model = PeftModel.from_pretrained(base, str(adapter))
    got = metrics(predict(model, setup.test_data, 64), 2)
    assert got["accuracy"] == pytest.approx(run["final"]["accuracy"], abs=1e-12)
    assert got["loss"] == pytest.approx(run["final"]["loss"], abs=1e-5)


def test_only_trainable_tensors_are_exchanged() -> None:
    cfg = load_config(QUICKSTART, SMALL)
    setup = build(cfg)
    names = setup.trainable.names
    assert names and all("lora_" in n or "classifier" in n for n in names)
    frozen = [n for n, p in setup.model.named_parameters() if not p.requires_grad]
    assert any("word_embeddings" in n for n in frozen)
    assert torch.is_tensor(next(iter(setup.trainable.snapshot().values())))


FRESH = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

folder, data = sys.argv[1], json.loads(open(sys.argv[2]).read())
model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(folder)
batch = tokenizer(data["texts"], truncation=True, max_length=data["max_length"], padding=True, return_tensors="pt")
with torch.no_grad():
    logits = model(**batch).logits
predicted = logits.argmax(-1).tolist()
loss = torch.nn.functional.cross_entropy(logits, torch.tensor(data["labels"])).item()
print(json.dumps({
    "loss": loss,
    "accuracy": sum(p == y for p, y in zip(predicted, data["labels"])) / len(predicted),
    "labels": model.config.id2label,
    "fedpeft_imported": any(m == "fedpeft" or m.startswith("fedpeft.") for m in sys.modules),
}))
"""


def hub_cache_with_minilm(root: Path) -> Path:
    """A Hugging Face cache holding the packaged MiniLM under its hub id, as a user who downloaded it has."""
    from fedpeft.config.names import resolve

    repo = root / "models--sentence-transformers--all-MiniLM-L6-v2"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in Path(resolve("minilm")).iterdir():
        (snapshot / file.name).symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def test_the_adapter_loads_in_transformers_alone_with_the_runs_accuracy(run: dict, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cfg = load_config(Path(run["run_dir"]) / "config.yaml")
    setup = build(cfg)
    adapter = Path(run["run_dir"]) / "adapter"
    peft_cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert peft_cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    card = (adapter / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card and "site-packages" not in card
    data = tmp_path / "test.json"
    test = setup.test
    data.write_text(json.dumps({"texts": test.texts, "labels": test.labels.tolist(), "max_length": 32}))  # type: ignore[attr-defined]
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(hub_cache_with_minilm(tmp_path / "hub")),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", FRESH, str(adapter), str(data)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert not got["fedpeft_imported"]
    assert got["labels"] == {"0": "rotten", "1": "fresh"} or got["labels"] == {0: "rotten", 1: "fresh"}
    assert abs(got["accuracy"] - run["final"]["accuracy"]) < 1e-3
    assert got["loss"] == pytest.approx(run["final"]["loss"], abs=1e-4)  # the same model, not just the same votes
