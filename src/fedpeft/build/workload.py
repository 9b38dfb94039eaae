"""What a run works on: its data split over clients, the shared model with the PEFT method applied, and
the evaluator of held-out data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from fedpeft.build.head_init import HeadInit, initialize_head
from fedpeft.config.checks import half_base_refused
from fedpeft.config.names import Task, infer_task
from fedpeft.config.schema import RunConfig
from fedpeft.data import Partition, TokenizedDataset, load_dataset, local_holdout, partition, tokenize, train_test_split
from fedpeft.data.batching import CausalLMDataset
from fedpeft.data.chat import encode_chat, encode_text
from fedpeft.data.dataset import Examples, GenerationDataset, ImageDataset, TextDataset
from fedpeft.data.images import PixelDataset, to_pixels
from fedpeft.errors import ConfigError
from fedpeft.evaluation.evaluator import Evaluator
from fedpeft.fleet.cores import claim
from fedpeft.methods.configured import apply_configured
from fedpeft.model import TrainableState
from fedpeft.model.device import base_dtype, check_precision, is_half, resolve_device, store_frozen_in
from fedpeft.model.load import load_model
from fedpeft.model.prefix_cache import PrefixCache, frozen_prefix_depth
from fedpeft.strategy import STRATEGIES

log = logging.getLogger("fedpeft")

Inputs = TokenizedDataset | PixelDataset | CausalLMDataset  # what the model reads, per example
KINDS = {  # what a dataset holds: (the model task it needs, in words, a packaged model that reads it)
    TextDataset: ("sequence_classification", "labelled texts", "minilm"),
    ImageDataset: ("image_classification", "images", "mobilenet_v2"),
    GenerationDataset: ("causal_lm", "texts for a language model", "smollm2"),
}


@dataclass(frozen=True)
class Setup:
    """Everything built from a config before the first round (shared by runs, runtimes and benchmarks).

    Example:
        >>> setup = build_setup(load_config("configs/quickstart.yaml"))  # doctest: +SKIP
        >>> len(setup.client_data), setup.trainable.numel()  # doctest: +SKIP
    """

    cfg: RunConfig
    task: str
    train: Examples
    test: Examples
    partition: Partition
    model: nn.Module
    tokenizer: Any
    trainable: TrainableState
    client_data: dict[str, Inputs]
    evaluator: Evaluator
    method_setup: dict[str, Any]
    prefix_cache: PrefixCache | None = None
    device: torch.device = torch.device("cpu")

    @property
    def test_data(self) -> Inputs:
        return self.evaluator.test_inputs

    @property
    def local_test(self) -> Inputs | None:
        return self.evaluator.local_test


def configure_torch(cfg: RunConfig) -> None:
    claim(cfg.threads)  # this run's share of the cores (or its pinned threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)


def _check_kind(cfg: RunConfig, dataset: Examples, task: str) -> None:
    holds, what, fix = KINDS[type(dataset)]
    if holds != task:
        raise ConfigError(
            f"data.dataset={cfg.data.dataset} holds {what}, but model.name={cfg.model.name!r} is a "
            f"{task.replace('_', ' ')} model: set model.name={fix} (or a matching model)"
        )


@dataclass(frozen=True)
class Provided:
    """Objects a Python caller hands in instead of names in the config (``fedpeft.run(..., model=, data=)``):
    a model (adapted in place) with its tokenizer, and the examples."""

    model: nn.Module | None = None
    tokenizer: Any = None
    data: Examples | None = None

    def task(self, cfg: RunConfig) -> Task:
        if self.model is None:
            return infer_task(cfg.model.name)
        return (
            "causal_lm"
            if hasattr(self.model, "generate") and "CausalLM" in type(self.model).__name__
            else ("sequence_classification")
        )


NOTHING = Provided()


def _base_model(cfg: RunConfig, task: Task, labels: list[str], provided: Provided) -> tuple[nn.Module, Any]:
    """The caller's model and tokenizer (checked against the data's labels), or the configured one loaded."""
    if provided.model is not None:
        if provided.tokenizer is None:
            raise ConfigError("model= was given without tokenizer=: pass the model's tokenizer too")
        have = getattr(getattr(provided.model, "config", None), "num_labels", None)
        if task == "sequence_classification" and have != len(labels):
            raise ConfigError(
                f"the given model classifies into {have} labels, the data has {len(labels)} ({', '.join(labels)}): "
                f"load it with num_labels={len(labels)}"
            )
        return provided.model, provided.tokenizer
    m = cfg.model
    return load_model(
        m.name,
        task,
        labels,
        seed=cfg.seed,
        pooling=m.pooling,
        trust_remote_code=m.trust_remote_code,
        num_layers=m.num_layers,
    )


def build_setup(cfg: RunConfig, provided: Provided = NOTHING) -> Setup:
    """Load and split the data, partition it, and build the shared model with the PEFT method applied (the
    caller's own model and examples where ``provided``)."""
    configure_torch(cfg)
    task = provided.task(cfg)
    dataset = provided.data if provided.data is not None else load_dataset(cfg.data)
    _check_kind(cfg, dataset, task)
    train, test = train_test_split(dataset, cfg.data, cfg.seed)
    parts = partition(train.labels, train.groups, cfg.partition, cfg.seed)
    train_idx, local_idx = local_holdout(parts.indices, cfg.data.local_test_fraction, cfg.seed)
    m = cfg.model
    model, tokenizer = _base_model(cfg, task, train.label_names, provided)
    tokens = model_inputs(train, tokenizer, cfg)
    client_data = {cid: tokens.subset(idx) for cid, idx in zip(parts.client_ids, train_idx)}
    model, method_setup = apply_configured(cfg, model, task, client_data)
    prepare = STRATEGIES.get(cfg.strategy.name).prepare_model
    if prepare is not None:
        prepare(model)
    device = place(model, cfg)
    if m.head_init != "none":
        # its own entry: a Fisher mask reports clients and bytes under the same names
        head = _head_init(cfg, model, task, len(train.label_names), client_data, device)
        method_setup = {**method_setup, "head_init": head}
    trainable = TrainableState(model)
    cache = PrefixCache(model, frozen_prefix_depth(model)) if m.cache_frozen_prefix else None
    local_test, groups = (
        _local_test(tokens, parts.client_ids, local_idx) if cfg.data.local_test_fraction > 0 else (None, [])
    )
    evaluator = Evaluator(
        task,
        model,
        trainable,
        tokenizer,
        test,
        model_inputs(test, tokenizer, cfg),
        train.label_names,
        cfg.eval,
        local_test,
        groups,
        precision=cfg.precision if is_half(model) else "fp32",
    )
    return Setup(
        cfg,
        task,
        train,
        test,
        Partition(parts.client_ids, train_idx),
        model,
        tokenizer,
        trainable,
        client_data,
        evaluator,
        method_setup,
        cache,
        device,
    )


def _head_init(
    cfg: RunConfig, model: nn.Module, task: str, num_labels: int, clients: dict[str, Inputs], device: torch.device
) -> dict[str, Any]:
    if task == "causal_lm":
        raise ConfigError(
            f"model.head_init={cfg.model.head_init} sets a classification head; a causal language model has "
            "none: set model.head_init: none"
        )
    kind = cast(HeadInit, cfg.model.head_init)  # (not "none": the caller checked)
    return initialize_head(model, num_labels, clients, kind, cfg.model.head_ridge, device)


def place(model: nn.Module, cfg: RunConfig) -> torch.device:
    """Move the model (frozen base and trainable tensors) to the configured device, with gradient
    checkpointing when asked; return the device."""
    device = resolve_device(cfg.device)
    check_precision(device, cfg.precision)
    if cfg.model.gradient_checkpointing:
        inner: Any = next((m for m in model.modules() if getattr(m, "supports_gradient_checkpointing", False)), None)
        if inner is None:
            raise ConfigError(
                f"model.gradient_checkpointing: {cfg.model.name} is not a Hugging Face model that supports it; "
                "set model.gradient_checkpointing: false"
            )
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device)
    half = base_dtype(cfg.model.base_dtype, cfg.precision, device, refused=half_base_refused(cfg) is not None)
    if half != torch.float32:
        saved = store_frozen_in(model, half)
        log.info("frozen base stored in %s: %.0f MB less", half, saved / 1e6)
    return device


def _local_test(
    tokens: Inputs, client_ids: list[str], local_idx: list[np.ndarray]
) -> tuple[Inputs, list[tuple[str, np.ndarray]]]:
    """Every client's held-out examples in one dataset, and each client's positions in it."""
    offsets = np.cumsum([0] + [len(i) for i in local_idx])
    groups = [(cid, np.arange(offsets[k], offsets[k + 1])) for k, cid in enumerate(client_ids)]
    return tokens.subset(np.concatenate(local_idx)), groups


def model_inputs(examples: Examples, tokenizer: Any, cfg: RunConfig) -> Inputs:
    """Token ids for texts, resized pixels for images: computed once, batched by index later."""
    if isinstance(examples, ImageDataset):
        return to_pixels(examples, cfg.data.image_size)
    if isinstance(examples, GenerationDataset):
        if examples.targets is None:
            return encode_text(tokenizer, examples.texts, cfg.data.max_length)
        return encode_chat(tokenizer, examples.texts, examples.targets, cfg.data.max_length)
    return tokenize(examples, tokenizer, cfg.data.max_length)
