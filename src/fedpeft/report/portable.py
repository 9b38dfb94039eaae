"""A run's adapter folder made loadable without fedpeft: the base model named by its hub id, the labels in a
``config.json``, the mean-pooling head as Hugging Face remote code (transformers has no class for it), and a
model card that says what the adapter is, how it was trained and how to load it.

Example:
    >>> remote = make_portable(Path("runs/quickstart/adapter"), model, "sentence-transformers/all-MiniLM-L6-v2",
    ...                        ["rotten", "fresh"])  # doctest: +SKIP
    >>> write_model_card(Path("runs/quickstart/adapter"), summary, "sentence-transformers/all-MiniLM-L6-v2",
    ...                  "sequence_classification", remote)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from fedpeft.model import modeling_fedpeft
from fedpeft.model.heads import MeanPoolingClassifier

REMOTE_CLASS = "modeling_fedpeft.MeanPoolingForSequenceClassification"
PROMPT_LEARNING = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}


def make_portable(folder: Path, model: nn.Module, base_id: str, label_names: list[str] | None) -> bool:
    """Name the base in ``adapter_config.json``; for the mean-pooling head also write ``config.json`` (the
    encoder's config, the labels, ``auto_map``) and the remote code. True when loading needs
    ``trust_remote_code=True``. A method saved in fedpeft's own format (no ``adapter_config.json``) is left
    to ``fedpeft.load``."""
    adapter_path = folder / "adapter_config.json"
    if not adapter_path.is_file():
        return False
    adapter = json.loads(adapter_path.read_text(encoding="utf-8"))
    adapter["base_model_name_or_path"] = base_id
    head = next((m for m in model.modules() if isinstance(m, MeanPoolingClassifier)), None)
    if head is not None and label_names is not None:
        if adapter.get("peft_type") not in PROMPT_LEARNING:  # (their forward is the task's peft class's)
            # peft's AutoPeftModelForSequenceClassification would put a first-token head under this adapter
            # and load it without a word; with no task type it refuses, and the remote code loads it right
            adapter["task_type"] = None
        config = head.config.to_dict()
        config.update(
            _name_or_path=base_id,
            architectures=[REMOTE_CLASS.rsplit(".", 1)[1]],
            auto_map={"AutoModelForSequenceClassification": REMOTE_CLASS},
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            fedpeft_base_model=base_id,
            fedpeft_head_dropout=float(head.dropout.p),
        )
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        shutil.copyfile(modeling_fedpeft.__file__, folder / "modeling_fedpeft.py")
    adapter_path.write_text(json.dumps(adapter, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return head is not None and label_names is not None


PIPELINE = {
    "sequence_classification": "text-classification",
    "causal_lm": "text-generation",
    "image_classification": "image-classification",
}


def _loading(folder: Path, task: str, remote: bool, peft_format: bool, labels: list[str] | None) -> str:
    """The few lines that load the adapter with transformers and peft alone."""
    if not peft_format:
        return f'import fedpeft\nmodel, tokenizer, labels = fedpeft.load("{folder.parent}")'
    if remote:
        return (
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
            f'model = AutoModelForSequenceClassification.from_pretrained("{folder}", trust_remote_code=True)\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{folder}")\n'
            "labels = model.config.id2label"
        )
    if task == "causal_lm":
        return (
            "from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{folder}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{folder}")'
        )
    if task == "sequence_classification" and labels is not None:
        return (
            "from peft import AutoPeftModelForSequenceClassification\nfrom transformers import AutoTokenizer\n\n"
            f"labels = {dict(enumerate(labels))!r}\n"
            f'model = AutoPeftModelForSequenceClassification.from_pretrained("{folder}", num_labels={len(labels)}, '
            "id2label=labels, label2id={v: k for k, v in labels.items()})\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{folder}")'
        )
    return f'import fedpeft\nmodel, tokenizer, labels = fedpeft.load("{folder.parent}")'


def _results(summary: dict[str, Any]) -> list[str]:
    final, data = summary.get("final") or {}, summary.get("data") or {}
    out = []
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("perplexity", "perplexity")):
        if final.get(key) is not None:
            out.append(f"- {name}: {final[key]:.4g}")
    if out:
        out.append(f"- on {data.get('test_examples', '?')} held-out {data.get('dataset', '')} examples")
    if data.get("majority_baseline") is not None:
        out.append(f"- majority-class baseline: {data['majority_baseline']:.3f}")
    return out


def write_model_card(folder: Path, summary: dict[str, Any], base_id: str, task: str, remote: bool) -> Path:
    """README.md: metadata for the hub, what was trained and how, the results, and how to load it."""
    model, data, strategy = summary.get("model") or {}, summary.get("data") or {}, summary.get("strategy") or {}
    labels = (summary.get("classes") or {}).get("labels")
    privacy = summary.get("privacy") or {}
    peft_format = (folder / "adapter_config.json").is_file()
    tags = ["fedpeft", "federated-learning", str(model.get("method", ""))]
    lines = [
        "---",
        f"base_model: {base_id}",
        "library_name: peft" if peft_format else "library_name: fedpeft",
        f"pipeline_tag: {PIPELINE.get(task, task)}",
        "tags:",
        *[f"- {t}" for t in tags if t],
        "---",
        "",
        f"# {summary.get('name', 'run')}: {model.get('method', '')} adapter for {base_id}",
        "",
        f"Trained federated with fedpeft: {summary.get('rounds')} rounds, {summary.get('clients_per_round')} of "
        f"{data.get('num_clients', '?')} clients per round ({data.get('partition', '?')} split of "
        f"{data.get('dataset', '?')}, {data.get('train_examples', '?')} training examples), strategy "
        f"{strategy.get('name', '?')}."
        + (f" Client-level DP: epsilon {privacy['epsilon']:.3g}." if privacy.get("epsilon") is not None else ""),
        "",
        f"- base model: `{base_id}`",
        f"- PEFT method: {model.get('method', '?')} ({model.get('family', '')})",
        f"- task: {task.replace('_', ' ')}" + (f", labels: {', '.join(map(str, labels))}" if labels else ""),
        "",
        "## Results",
        "",
        *(_results(summary) or ["- (not evaluated)"]),
        "",
        "## How to load",
        "",
        "```python",
        _loading(folder, task, remote, peft_format, labels),
        "```",
        "",
    ]
    if remote:
        lines += [
            "The head is a masked mean of the encoder's last hidden states followed by a linear layer (how "
            "sentence-transformers encoders are trained); transformers has no class for it, so it ships as "
            "`modeling_fedpeft.py` and loads with `trust_remote_code=True`.",
            "",
        ]
    if str(model.get("name", "")) == "smollm2" or str(model.get("name", "")).endswith(".gguf"):
        lines += [
            "fedpeft trained this adapter on the GGUF file's Q4_1 weights, dequantised; the hub's original "
            f'weights differ slightly, so `fedpeft.load("{folder.parent}")` reproduces the run exactly.',
            "",
        ]
    path = folder / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
