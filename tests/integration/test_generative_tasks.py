"""Generative tasks end to end: SmolLM2 (cut to two blocks) instruction-tuned on chatterbot pairs, and
language modelling on Hamlet by character, on small slices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fedpeft
from fedpeft.report import summary_text

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).parents[2] / "configs"
QUICK = [
    "model.num_layers=2",
    "rounds=2",
    "clients.per_round=3",
    "clients.local_steps=3",
    "threads=1",
    "eval.every=1",
    "output.plot=false",
    "data.max_length=96",
]


def test_chat_instruction_tuning_reports_perplexity_answers_and_samples(tmp_path: Path) -> None:
    summary = fedpeft.run(
        CONFIGS / "chat.yaml",
        [
            *QUICK,
            "data.max_train_examples=90",
            "data.max_test_examples=12",
            "eval.generate_examples=4",
            "eval.max_new_tokens=6",
            f"output.dir={tmp_path}",
        ],
        progress=False,
    )
    first, final = summary["initial"], summary["final"]
    assert final["perplexity"] < first["perplexity"] and final["tokens"] > 0
    assert 0 <= final["rouge_l"] <= 1 and 0 <= final["exact_match"] <= 1 and final["answered"] == 4
    samples = summary["samples"]
    assert len(samples["before"]) == len(samples["after"]) == 3 and samples["decoding"] == "greedy"
    assert samples["after"][0]["prompt"] == samples["before"][0]["prompt"]
    assert summary["data"]["majority_baseline"] is None and "test perplexity" in summary_text(summary)
    records = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records if r.get("test")] == [0, 1, 2]


def test_hamlet_language_modelling_by_character(tmp_path: Path) -> None:
    summary = fedpeft.run(
        CONFIGS / "hamlet.yaml",
        [
            *QUICK,
            "data.max_train_examples=200",
            "data.max_test_examples=20",
            "eval.finetune_steps=1",
            f"output.dir={tmp_path}",
        ],
        progress=False,
    )
    assert summary["final"]["perplexity"] < summary["initial"]["perplexity"] and "rouge_l" not in summary["final"]
    assert summary["data"]["partition"] == "natural" and summary["data"]["num_clients"] >= 10
    per_client = summary["per_client"]
    assert per_client["metric"] == "perplexity" and per_client["worst_10pct"] >= per_client["mean"]
    own = per_client["personalised"]  # each client's model after one step of fine-tuning on its own lines
    assert own["metric"] == "perplexity" and own["clients"] == per_client["clients"] and own["finetune_steps"] == 1
