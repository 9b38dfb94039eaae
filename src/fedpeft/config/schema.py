"""Typed run configuration. Every section refuses unknown keys, wrong types and out-of-range values.

The YAML file mirrors these classes one to one; see configs/quickstart.yaml for a commented example.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedpeft.config.methods import (  # noqa: F401  (re-exported: methods import their configs from here)
    AdapterMethod,
    BitFitMethod,
    FullMethod,
    HeadMethod,
    IA3Method,
    LayerNormMethod,
    LoraMethod,
    PeftLibraryMethod,
    PeftMethodConfig,
    PrefixTuningMethod,
    PromptTuningMethod,
    SparseMethod,
    TopLayersMethod,
    VeraMethod,
)
from fedpeft.config.section import Section


class DataConfig(Section):
    """Where the examples come from and how they are held out."""

    dataset: str = Field(
        "rotten_tomatoes",
        description="a built-in dataset name (`fedpeft datasets`), 'csv', 'jsonl', 'parquet' (with path) "
        "or 'hf' (with hf_id)",
    )
    path: str | None = Field(None, description="local file for csv / jsonl / parquet")
    hf_id: str | None = Field(None, description="Hugging Face dataset id or local folder, for dataset: hf")
    hf_split: str = "train"
    text_column: str = "text"
    label_column: str = "label"
    client_column: str | None = Field(None, description="column giving each example's natural client")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    max_test_examples: int | None = Field(None, ge=1)
    max_train_examples: int | None = Field(None, ge=1)
    local_test_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="held out from each client's data for per-client evaluation"
    )
    max_length: int = Field(128, ge=4, le=8192, description="tokens per example after truncation")

    @model_validator(mode="after")
    def _source_fields(self) -> DataConfig:
        if self.dataset in ("csv", "jsonl", "parquet") and not self.path:
            raise ValueError(f"data.dataset is {self.dataset!r}: set data.path to the file to read")
        if self.dataset == "hf" and not self.hf_id:
            raise ValueError("data.dataset is 'hf': set data.hf_id to a dataset id or local folder")
        return self


class PartitionConfig(Section):
    """How training examples are split across clients."""

    method: Literal["iid", "dirichlet", "shards", "quantity", "natural"] = "iid"
    num_clients: int | None = Field(
        None,
        ge=1,
        description="number of clients (default 10); for 'natural' every group unless set, then the largest",
    )
    alpha: float = Field(0.5, gt=0.0, description="Dirichlet concentration (dirichlet, quantity)")
    shards_per_client: int = Field(2, ge=1, description="labels per client (shards)")
    min_examples_per_client: int = Field(1, ge=1)


class ModelConfig(Section):
    name: str = Field("minilm", description="'minilm' (packaged), a Hugging Face model id or a local folder")
    pooling: Literal["auto", "cls", "mean"] = Field(
        "auto",
        description="classification pooling: 'cls' uses the model's own head, 'mean' a masked mean of the "
        "last hidden states; 'auto' picks mean for sentence-transformers checkpoints, else cls",
    )
    trust_remote_code: bool = False
    num_layers: int | None = Field(
        None, ge=1, description="keep only the first N transformer blocks (quick runs on a cut-down model)"
    )


class ClientConfig(Section):
    """Client sampling and local training."""

    per_round: int = Field(10, ge=1, description="clients sampled each round")
    local_epochs: int = Field(1, ge=1)
    local_steps: int | None = Field(None, ge=1, description="if set, a fixed number of optimiser steps")
    batch_size: int = Field(16, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="for sgd")
    max_grad_norm: float | None = Field(None, gt=0.0)
    keep_optimizer_state: bool = Field(
        False, description="keep each client's optimiser state across the rounds it takes part in"
    )


class StrategyConfig(Section):
    name: Literal["fedavg"] = "fedavg"
    server_lr: float = Field(1.0, gt=0.0, description="step size applied to the averaged update")
    min_updates: int = Field(1, ge=1, description="a round with fewer valid updates is recorded as failed")


class EvalConfig(Section):
    every: int = Field(1, ge=0, description="evaluate every N rounds; 0 means only after the last round")
    batch_size: int = Field(128, ge=1)
    per_client: bool = Field(False, description="also evaluate on each client's held-out examples")


class OutputConfig(Section):
    dir: str = "runs"
    overwrite: bool = Field(False, description="reuse runs/<name> instead of picking a fresh suffix")
    save_adapter: bool = True
    plot: bool = True


class RunConfig(Section):
    """A whole run. Example:

    >>> cfg = RunConfig.model_validate({"rounds": 2, "clients": {"per_round": 3}})
    >>> cfg.clients.per_round, cfg.peft.method
    (3, 'lora')
    """

    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    seed: int = 0
    rounds: int = Field(10, ge=1)
    runtime: Literal["simulator"] = "simulator"
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None uses every core")
    data: DataConfig = DataConfig()
    partition: PartitionConfig = PartitionConfig()
    model: ModelConfig = ModelConfig()
    peft: PeftMethodConfig = LoraMethod()
    clients: ClientConfig = ClientConfig()
    strategy: StrategyConfig = StrategyConfig()
    eval: EvalConfig = EvalConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        if self.eval.per_client and self.data.local_test_fraction == 0.0:
            raise ValueError(
                "eval.per_client needs held-out examples on each client: set data.local_test_fraction "
                "(for example 0.2)"
            )
        if self.strategy.min_updates > self.clients.per_round:
            raise ValueError(
                f"strategy.min_updates ({self.strategy.min_updates}) exceeds clients.per_round "
                f"({self.clients.per_round}): no round could succeed"
            )
        return self
