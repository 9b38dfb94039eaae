"""Token sequences for causal language models: chat pairs with the loss on the answer only, and plain text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedpeft.data.batching import CausalLMDataset
from fedpeft.errors import DataError


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """The chat-formatted user turn followed by the assistant header: what the model answers from."""
    messages = [{"role": "user", "content": question}]
    return _ids(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True))


def encode_chat(tokenizer: Any, questions: Sequence[str], answers: Sequence[str], max_length: int) -> CausalLMDataset:
    """Each pair as the tokenizer's chat template renders it; ``loss_from`` marks where the answer starts, so
    only answer tokens (and the end-of-turn marker) are targets. Pairs longer than ``max_length`` lose the end
    of their answer; a prompt that alone fills ``max_length`` is refused."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError("the tokenizer has no chat template; instruction tuning needs a chat model (e.g. smollm2)")
    rows, starts = [], []
    for q, a in zip(questions, answers):
        prompt = prompt_ids(tokenizer, q)
        full = _ids(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": q}, {"role": "assistant", "content": a}], tokenize=True
            )
        )
        if full[: len(prompt)] != prompt:
            raise DataError(
                "the chat template renders the prompt differently inside a full conversation; "
                "cannot tell answer tokens from prompt tokens"
            )
        if len(prompt) >= max_length:
            raise DataError(
                f"a question takes {len(prompt)} tokens with the chat template, leaving no room for "
                f"its answer within data.max_length={max_length}: raise data.max_length"
            )
        rows.append(full[:max_length])
        starts.append(len(prompt))
    return CausalLMDataset(rows, np.asarray(starts, dtype=np.int64), _pad(tokenizer))


def encode_text(tokenizer: Any, texts: Sequence[str], max_length: int) -> CausalLMDataset:
    """Plain language modelling: every token after the first is a target."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    rows = [list(ids) for ids in enc["input_ids"]]
    return CausalLMDataset(rows, np.zeros(len(rows), dtype=np.int64), _pad(tokenizer))


def _ids(value: Any) -> list[int]:
    """apply_chat_template returns a list, or a BatchEncoding with input_ids, depending on the version."""
    ids = value["input_ids"] if hasattr(value, "keys") else value
    return [int(t) for t in ids]


def _pad(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad or 0)
