"""Evaluation of generative models: held-out perplexity over the target tokens, and greedy answers scored
against references with ROUGE-L (Google's rouge-score) and exact match."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedpeft.data.batching import CausalLMDataset, length_sorted_batches
from fedpeft.model.device import model_device, on_device


@torch.inference_mode()
def perplexity(model: nn.Module, data: CausalLMDataset, batch_size: int) -> dict[str, float]:
    """Mean negative log-likelihood per target token (prompts and padding excluded) and its exponential.

    Every token counts the same however the examples are batched, so the figure does not depend on
    ``batch_size``."""
    model.eval()
    nll, tokens = 0.0, 0
    for idx in length_sorted_batches([len(x) for x in data.input_ids], batch_size):
        batch = data.batch(idx)
        labels = batch.pop("labels")
        logits = model(**on_device(batch, model_device(model))).logits.float().cpu()[:, :-1]
        target = labels[:, 1:]
        losses = nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum")
        nll += float(losses)
        tokens += int((target != -100).sum())
    loss = nll / max(tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": float(tokens)}


@torch.inference_mode()
def greedy_answers(
    model: nn.Module, tokenizer: object, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int = 8
) -> list[str]:
    """Greedy continuations of token-id prompts (left-padded in batches), decoded without special tokens."""
    model.eval()
    pad = int(getattr(tokenizer, "pad_token_id", None) or 0)
    eos = getattr(tokenizer, "eos_token_id", None)
    out: list[str] = [""] * len(prompts)
    for idx in length_sorted_batches([len(p) for p in prompts], batch_size):
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for j, i in enumerate(idx):
            ids[j, width - len(prompts[i]) :] = torch.tensor(list(prompts[i]), dtype=torch.long)
            mask[j, width - len(prompts[i]) :] = 1
        device = model_device(model)
        generated = model.generate(  # type: ignore[operator]
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=eos,
        ).cpu()
        decode = tokenizer.decode  # type: ignore[attr-defined]
        for j, i in enumerate(idx):
            out[i] = decode(generated[j, width:], skip_special_tokens=True).strip()
    return out


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces.

    Example:
        >>> normalise("The  Answer, is: 42!")
        'answer is 42'
    """
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after ``normalise``."""
    if not references:
        return float("nan")
    return float(np.mean([normalise(p) == normalise(r) for p, r in zip(predictions, references)]))


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (longest common subsequence of tokens). Tokens are lower-cased runs of letters
    and digits in any script, so non-Latin answers count too."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())
    if not references:
        return float("nan")
    return float(np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]))


class _WordTokenizer:
    """rouge-score's tokenizer interface; its default drops every non-ASCII character."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())
