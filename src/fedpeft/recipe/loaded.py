"""A finished run, loaded back: its base model with the trained adapter, its tokenizer and its label names,
ready to predict. Works for every PEFT method (peft's format and fedpeft's own).

Example:
    >>> model, tokenizer, labels = fedpeft.load("runs/quickstart")  # doctest: +SKIP
    >>> fedpeft.load("runs/quickstart").predict(["a gripping, funny film"])  # doctest: +SKIP
    [{'text': 'a gripping, funny film', 'label': 'fresh', 'probability': 0.91}]
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fedpeft.config import RunConfig, load_config
from fedpeft.config.names import Task
from fedpeft.errors import ConfigError
from fedpeft.methods import METHODS
from fedpeft.model.load import load_model


@dataclass
class LoadedRun:
    """The run's trained model (eval mode, on the CPU), tokenizer (None for image models), label names (None
    for language models) and config; unpacks as ``model, tokenizer, labels``."""

    model: nn.Module
    tokenizer: Any
    labels: list[str] | None
    config: RunConfig
    task: Task

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer, self.labels))

    @torch.no_grad()
    def predict(self, texts: Sequence[str], max_new_tokens: int | None = None) -> list[dict[str, Any]]:
        """Each text's predicted label and its probability; for a language model, its greedy answer."""
        if self.tokenizer is None:
            raise ConfigError("predict takes texts; this run's model reads images: use fedpeft.load(...).model")
        if self.task == "causal_lm":
            return [{"text": t, "answer": self._answer(t, max_new_tokens)} for t in texts]
        batch = self.tokenizer(
            list(texts), truncation=True, max_length=self.config.data.max_length, padding=True, return_tensors="pt"
        )
        probs = self.model(**batch).logits.softmax(-1)
        labels = self.labels or [str(i) for i in range(probs.shape[-1])]
        best = probs.argmax(-1).tolist()
        return [
            {"text": t, "label": labels[k], "probability": round(float(p[k]), 4)} for t, k, p in zip(texts, best, probs)
        ]

    def _answer(self, question: str, max_new_tokens: int | None) -> str:
        from fedpeft.data.chat import prompt_ids

        tok = self.tokenizer
        ids = prompt_ids(tok, question) if getattr(tok, "chat_template", None) else tok(question)["input_ids"]
        prompt = torch.tensor([ids])
        out = self.model.generate(  # type: ignore[operator]
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=max_new_tokens or self.config.eval.max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        return str(tok.decode(out[0, prompt.shape[1] :], skip_special_tokens=True)).strip()


def load_run(run_dir: str | Path) -> LoadedRun:
    """The run in ``run_dir`` (runs/<name>/): its config's base model with the saved adapter on it."""
    folder = Path(run_dir)
    adapter = folder / "adapter"
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"{folder}: no config.yaml, so not a fedpeft run folder (runs/<name>/)")
    if not (adapter / "fedpeft.json").is_file():
        raise ConfigError(f"{folder}: no saved adapter (the run had output.save_adapter: false, or did not finish)")
    cfg = load_config(folder / "config.yaml")
    meta = json.loads((adapter / "fedpeft.json").read_text(encoding="utf-8"))
    task: Task = meta["task"]
    labels = None if task == "causal_lm" else list(meta["label_names"])
    m = cfg.model
    base, tokenizer = load_model(
        m.name,
        task,
        labels or [],
        seed=cfg.seed,
        pooling=m.pooling,
        trust_remote_code=m.trust_remote_code,
        num_layers=m.num_layers,
    )
    model = METHODS.get(meta["method"]).load(base, adapter).eval()
    return LoadedRun(model, tokenizer, labels, cfg, task)
