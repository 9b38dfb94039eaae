"""Causal LM examples: chat pairs with the loss on the answer only, and plain text."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from fedpeft.data.chat import encode_chat, encode_text, prompt_ids
from fedpeft.errors import DataError

WORDS = [
    "<pad>",
    "<|im_start|>",
    "<|im_end|>",
    "user",
    "assistant",
    "\n",
    "what",
    "is",
    "ai",
    "?",
    "a",
    "field",
    "of",
    "science",
    "hi",
    "hello",
    "<unk>",
]
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(" "), behavior="removed"),
            pre_tokenizers.Split(Regex(r"<\|im_(?:start|end)\|>|\n|\?"), behavior="isolated"),
        ]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>", unk_token="<unk>")
    fast.chat_template = TEMPLATE
    return fast


def test_only_answer_tokens_are_targets() -> None:
    tok = chat_tokenizer()
    data = encode_chat(tok, ["what is ai ?", "hi"], ["a field of science", "hello"], max_length=64)
    batch = data.batch(np.array([0, 1]))
    first = [WORDS[t] for t, lab in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist()) if lab != -100]
    assert first == ["a", "field", "of", "science", "<|im_end|>", "\n"]
    assert len(prompt_ids(tok, "hi")) == int(data.loss_from[1])
    assert (batch["labels"][1][batch["attention_mask"][1] == 0] == -100).all()  # padding is never a target


def test_long_answers_are_cut_and_prompts_that_fill_the_budget_refused() -> None:
    tok = chat_tokenizer()
    start = len(prompt_ids(tok, "what is ai ?"))
    data = encode_chat(tok, ["what is ai ?"], ["a field of science"], max_length=start + 2)
    assert len(data.input_ids[0]) == start + 2
    with pytest.raises(DataError, match="raise data.max_length"):
        encode_chat(tok, ["what is ai ?"], ["a"], max_length=start)
    tok.chat_template = None
    with pytest.raises(DataError, match="no chat template"):
        encode_chat(tok, ["hi"], ["hello"], max_length=32)


def test_plain_text_targets_every_token() -> None:
    data = encode_text(chat_tokenizer(), ["what is ai ?", "hello"], max_length=3)
    assert [len(r) for r in data.input_ids] == [3, 1] and data.loss_from.tolist() == [0, 0]


@pytest.mark.integration
def test_smollm2_chat_template_marks_the_answer() -> None:
    from fedpeft.model.load import load_model

    _, tok = load_model("smollm2", "causal_lm", [], seed=0, num_layers=1)
    data = encode_chat(tok, ["What is AI?"], ["A field of science."], max_length=256)
    answer = [
        t
        for t, lab in zip(
            data.batch(np.array([0]))["input_ids"][0].tolist(), data.batch(np.array([0]))["labels"][0].tolist()
        )
        if lab != -100
    ]
    assert tok.decode(answer).startswith("A field of science.")
