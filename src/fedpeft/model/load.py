"""Load a pretrained base model: a packaged alias ('minilm'), a Hugging Face model id or a local folder."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from fedpeft.config.names import MODEL_ALIASES, Task, resolve
from fedpeft.errors import ModelError
from fedpeft.model.heads import MeanPoolingClassifier, uses_mean_pooling


def quiet_transformers() -> None:
    """Silence the per-load weight reports and progress bars; our own summary says what matters."""
    import transformers

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("peft").setLevel(logging.ERROR)


def load_sequence_classifier(
    name: str,
    label_names: list[str],
    *,
    seed: int,
    pooling: str = "auto",
    trust_remote_code: bool = False,
) -> tuple[nn.Module, object]:
    """Return (model, tokenizer) with a freshly initialised classification head of len(label_names).

    Example:
        >>> model, tok = load_sequence_classifier("minilm", ["neg", "pos"], seed=0)  # doctest: +SKIP
    """
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    source = resolve(name)
    if pooling == "auto":
        pooling = "mean" if uses_mean_pooling(source) else "cls"
    torch.manual_seed(seed)  # the new head's initialisation is part of the run's seed
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        if pooling == "mean":
            encoder = AutoModel.from_pretrained(source, trust_remote_code=trust_remote_code)
            model: nn.Module = MeanPoolingClassifier(encoder, len(label_names))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=len(label_names),
                id2label=dict(enumerate(label_names)),
                label2id={n: i for i, n in enumerate(label_names)},
                trust_remote_code=trust_remote_code,
            )
    except (OSError, ValueError) as exc:
        hint = (
            ""
            if Path(source).exists()
            else (
                " It is neither a packaged alias (" + ", ".join(MODEL_ALIASES.names()) + ") nor a local folder,"
                " and the model hub could not provide it."
            )
        )
        raise ModelError(f"could not load model {name!r}: {exc}.{hint}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id  # type: ignore[union-attr]
    return model, tokenizer


def load_model(
    name: str,
    task: Task,
    label_names: list[str],
    *,
    seed: int,
    pooling: str = "auto",
    trust_remote_code: bool = False,
    num_layers: int | None = None,
) -> tuple[nn.Module, object | None]:
    """(model, tokenizer or None) for any supported task: the one entry point the rest of fedpeft uses.

    Example:
        >>> model, _ = load_model("mobilenet_v2", "image_classification", list("0123456789"), seed=0)  # doctest: +SKIP
    """
    from fedpeft.model.causal_lm import load_causal_lm, truncate_layers
    from fedpeft.model.vision import load_image_classifier

    quiet_transformers()
    if task == "causal_lm":
        return load_causal_lm(resolve(name), num_layers=num_layers)
    if task == "image_classification":
        model = load_image_classifier(resolve(name), len(label_names), seed=seed)
        if num_layers is not None:
            raise ModelError("model.num_layers applies to transformer models, not to MobileNetV2")
        return model, None
    model, tokenizer = load_sequence_classifier(
        name, label_names, seed=seed, pooling=pooling, trust_remote_code=trust_remote_code
    )
    if num_layers is not None:
        truncate_layers(model, num_layers)
    return model, tokenizer
