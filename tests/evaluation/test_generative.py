"""Generative evaluation: perplexity over target tokens, batched greedy answers, ROUGE-L and exact match."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from fedpeft.data import CausalLMDataset
from fedpeft.evaluation.generative import exact_match, greedy_answers, normalise, perplexity, rouge_l


class DigitTokenizer:
    """Token id t decodes to the word 'w<t>'; 1 is the end of sequence, 0 padding."""

    pad_token_id, eos_token_id = 0, 1

    def decode(self, ids: torch.Tensor, skip_special_tokens: bool = True) -> str:
        return " ".join(f"w{int(t)}" for t in ids if not (skip_special_tokens and int(t) in (0, 1)))


def tiny_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=40,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        )
    )


def rows(n: int = 10) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [[int(t) for t in rng.integers(3, 40, size=int(rng.integers(3, 9)))] for _ in range(n)]


def test_perplexity_counts_only_target_tokens_and_ignores_batching() -> None:
    model, data = tiny_lm(), CausalLMDataset(rows(), np.full(10, 2), pad_id=0)
    batched, single = perplexity(model, data, batch_size=4), perplexity(model, data, batch_size=1)
    assert batched["loss"] == pytest.approx(single["loss"], rel=1e-5)
    nll = tokens = 0.0
    for i in range(10):  # the reference: Hugging Face's own mean loss per example, weighted by its targets
        b = data.batch(np.array([i]))
        n = int((b["labels"][:, 1:] != -100).sum())
        with torch.no_grad():
            nll += float(model(**b).loss) * n
        tokens += n
    assert batched["tokens"] == tokens == sum(len(r) - 2 for r in rows())  # the first two are the prompt
    assert batched["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)


def test_batched_greedy_answers_equal_one_at_a_time() -> None:
    model, prompts = tiny_lm(), rows(6)
    batched = greedy_answers(model, DigitTokenizer(), prompts, max_new_tokens=5, batch_size=4)
    for prompt, answer in zip(prompts, batched):
        alone = model.generate(
            input_ids=torch.tensor([prompt]), max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=1
        )
        assert answer == DigitTokenizer().decode(alone[0, len(prompt) :])
    assert batched == greedy_answers(model, DigitTokenizer(), prompts, max_new_tokens=5, batch_size=4)


def test_rouge_l_and_exact_match() -> None:
    assert rouge_l(["the cat sat"], ["the cat sat"]) == 1.0
    assert rouge_l(["a b c d"], ["a c"]) == pytest.approx(2 * (2 / 4 * 1.0) / (2 / 4 + 1.0))
    assert rouge_l(["Привет мир"], ["привет, мир!"]) == 1.0  # non-Latin scripts are tokens too
    assert exact_match(["The answer!", "no"], ["answer", "yes"]) == 0.5
    assert normalise("An  Apple, the end.") == "apple end"
