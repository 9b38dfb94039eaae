"""Typed run configuration. Every section refuses unknown keys, wrong types and out-of-range values.

The YAML file mirrors these classes one to one; see configs/quickstart.yaml for a commented example.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fedpeft.config.checks import check_run
from fedpeft.config.compression import CompressionConfig
from fedpeft.config.methods import PeftMethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS, STRATEGY_CONFIGS
from fedpeft.config.section import Section
from fedpeft.config.strategies import StrategyConfig


class DataConfig(Section):
    """Where the examples come from and how they are held out."""

    dataset: str = Field(
        "rotten_tomatoes",
        description="a built-in dataset name (`fedpeft datasets`), 'csv', 'jsonl', 'parquet' (with path) "
        "or 'hf' (with hf_id)",
    )
    path: str | None = Field(None, description="local file for csv / jsonl / parquet")
    encoding: str = Field("utf-8", description="text encoding of a csv / jsonl file (e.g. latin-1, cp1252)")
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
    image_size: int = Field(32, ge=8, le=512, description="side images are resized to (image datasets)")
    languages: list[str] | None = Field(None, description="chatterbot: the languages to load (default english)")

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
    dirichlet_over: Literal["labels", "clients"] = Field(
        "labels", description="dirichlet: split each label over clients, or draw each client's label mix"
    )
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
    cache_frozen_prefix: bool = Field(
        False,
        description="when only upper blocks train (top_layers, head, LoRA with peft.layers), compute the "
        "frozen lower blocks once per example and reuse them (they then run without dropout)",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="recompute each block's activations in the backward pass instead of keeping them "
        "(less memory for long sequences, about a third more compute; Hugging Face models)",
    )
    base_dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="what the frozen base's matrices (linear, embedding, convolution weights) are stored in: "
        "bf16/fp16 halve the base's memory and need the same precision; auto stores them in the precision's "
        "half type on an accelerator when precision is bf16 or fp16 and nothing refuses it, else in fp32. "
        "Trainable tensors and norms stay fp32",
    )
    head_init: Literal["none", "class_means", "ridge"] = Field(
        "none",
        description="set the classification head before round 1 from sums every client sends once: its "
        "per-class feature means (class_means, FedNCM) or ridge regression on its features (ridge, Fed3R); the "
        "sums do not depend on how the examples are split, so label skew cannot bias the starting head",
    )
    head_ridge: float = Field(1.0, gt=0.0, description="ridge penalty lambda for head_init: ridge")


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
    loss: Literal["cross_entropy", "balanced_softmax", "logit_calibration"] = Field(
        "cross_entropy",
        description="classification loss: balanced_softmax adds log n_y to the logits (Ren et al. 2020), "
        "logit_calibration subtracts calibration_tau * n_y^(-1/4) (FedLC, Zhang et al. 2022), n_y being the "
        "client's examples of label y: a label-skewed client stops writing its own prior into the shared model",
    )
    calibration_tau: float = Field(1.0, gt=0.0, description="FedLC's tau, for loss: logit_calibration")
    keep_optimizer_state: bool = Field(
        False, description="keep each client's optimiser state across the rounds it takes part in"
    )
    cohort: int = Field(
        1,
        ge=1,
        description="train this many clients per forward pass over the shared frozen base (their batches "
        "stacked, each example through its own client's tensors): fills an accelerator; with dropout off the "
        "same results as one by one. LoRA and its variants, IA3, VeRA, adapters, BitFit, LayerNorm, head",
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="train a round's clients in this many processes forked from the run (sharing the frozen "
        "base's memory), each with threads / workers torch threads; default: one per core the run may use "
        "(threads, else its affinity mask capped by OMP_NUM_THREADS; as many train at once as its share allows) "
        "on the CPU, one on an accelerator. Same results as one process with as many "
        "threads per process",
    )


Tiers = dict[float, float]


def _check_tiers(name: str, tiers: Tiers | None) -> None:
    if tiers is None:
        return
    if not tiers or any(share <= 0 for share in tiers.values()):
        raise ValueError(f"resources.{name}: give each tier a positive share, e.g. {{4: 0.3, 8: 0.7}}")
    if abs(sum(tiers.values()) - 1.0) > 1e-6:
        raise ValueError(f"resources.{name}: shares sum to {sum(tiers.values()):g}; they must sum to 1")


class ResourcesConfig(Section):
    """Per-client resources, each drawn once per client from tiers written as {value: share of clients}."""

    rank_tiers: dict[int, float] | None = Field(
        None, description="LoRA rank per client, e.g. {4: 0.3, 8: 0.5, 16: 0.2}; peft.r must be the largest"
    )
    step_tiers: dict[int, float] | None = Field(None, description="local optimiser steps per client")
    speed_tiers: dict[float, float] | None = Field(
        None, description="compute speed in training examples per second, for the simulated round time"
    )
    uplink_mbps: float | None = Field(None, gt=0.0, description="client upload bandwidth (simulated time)")
    downlink_mbps: float | None = Field(None, gt=0.0, description="client download bandwidth (simulated time)")

    @model_validator(mode="after")
    def _shares(self) -> ResourcesConfig:
        for name in ("rank_tiers", "step_tiers", "speed_tiers"):
            _check_tiers(name, getattr(self, name))
        for name, tiers in (
            ("rank_tiers", self.rank_tiers),
            ("step_tiers", self.step_tiers),
            ("speed_tiers", self.speed_tiers),
        ):
            if tiers and min(tiers) <= 0:
                raise ValueError(f"resources.{name}: tier values must be positive")
        return self


class ParticipationConfig(Section):
    """Who answers in a round: random dropouts and stragglers past a deadline on the simulated clock."""

    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="probability that a sampled client never replies")
    deadline_s: float | None = Field(
        None, gt=0.0, description="round deadline in simulated seconds (needs resources.speed_tiers)"
    )
    stragglers: Literal["drop", "stale"] = Field(
        "drop", description="a late update is dropped, or used in the round it arrives with a staleness weight"
    )
    staleness_exponent: float = Field(0.5, ge=0.0, description="a late update weighs (1 + rounds late)^-a")
    max_staleness: int = Field(4, ge=1, description="updates later than this many rounds are dropped")


class EvalConfig(Section):
    every: int = Field(1, ge=0, description="evaluate every N rounds; 0 means only after the last round")
    batch_size: int = Field(128, ge=1)
    generate_examples: int = Field(
        32,
        ge=0,
        description="causal LMs with answers: held-out prompts answered "
        "greedily and scored with ROUGE-L and exact match",
    )
    max_new_tokens: int = Field(32, ge=1, description="the longest greedy answer")
    per_client: bool = Field(False, description="also evaluate on each client's held-out examples")
    finetune_steps: int = Field(
        0,
        ge=0,
        description="personalised evaluation: each client fine-tunes the global adapter this many "
        "steps on its own training examples before its held-out examples are scored (needs per_client)",
    )


class RobustnessConfig(Section):
    """Defences against bad or malicious clients: a norm limit, norm bounding, a robust aggregator."""

    aggregator: Literal["mean", "median", "trimmed_mean", "krum", "multi_krum"] = Field(
        "mean", description="how the server combines updates: the weighted mean or a Byzantine-robust rule"
    )
    trim_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="trimmed_mean: share cut at each end")
    byzantine: int = Field(1, ge=0, description="krum / multi_krum: the number f of malicious clients tolerated")
    multi_krum: int | None = Field(None, ge=1, description="multi_krum: updates averaged (default n - f)")
    norm_bound: float | None = Field(None, gt=0.0, description="scale every update down to this L2 norm")
    max_update_norm: float | None = Field(None, gt=0.0, description="reject updates whose L2 norm is larger")


class DPSGDConfig(Section):
    """Sample-level DP-SGD in local training (Opacus): clip each example's gradient, add Gaussian noise per
    step, Poisson-sampled batches; each client's epsilon protects every one of its examples."""

    enabled: bool = False
    max_grad_norm: float = Field(1.0, gt=0.0, description="L2 clip norm of each example's gradient")
    noise_multiplier: float | None = Field(None, ge=0.0, description="noise std / max_grad_norm")
    target_epsilon: float | None = Field(
        None,
        gt=0.0,
        description="calibrate each client's noise so that its epsilon stays under this even if it "
        "takes part in every round",
    )
    delta: float = Field(1e-5, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _noise(self) -> DPSGDConfig:
        if self.enabled and (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError(
                "privacy.dp_sgd: set exactly one of privacy.dp_sgd.noise_multiplier (e.g. 1.0) and "
                "privacy.dp_sgd.target_epsilon (e.g. 8)"
            )
        return self


class SecureAggregationConfig(Section):
    """Secure aggregation (Bonawitz et al.): clients mask fixed-point updates with pairwise and self masks so
    the server learns only the round's mean; secret-shared keys recover it when clients drop out."""

    enabled: bool = False
    threshold: float = Field(
        0.6,
        gt=0.5,
        le=1.0,
        description="share of the round's sampled clients that must send masked updates; the round fails with fewer",
    )
    bound: float = Field(
        1.0,
        gt=0.0,
        description="each coordinate of a client's weight-scaled update is "
        "clipped to +-bound (29 fraction bits at 1.0)",
    )


class PrivacyConfig(Section):
    """Differential privacy. Client-level (DP-FedAvg): clip every update to ``clip``, add Gaussian noise of
    std ``noise_multiplier`` x clip, centrally (the server, to the sum) or locally (each client). Sample-level:
    ``dp_sgd`` in local training. The two compose."""

    client_dp: Literal["off", "central", "local"] = "off"

    @field_validator("client_dp", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML reads a bare `off` (`privacy.client_dp=off`) as false

    clip: float = Field(1.0, gt=0.0, description="L2 clip norm of each update (the start value if adaptive)")
    noise_multiplier: float | None = Field(None, ge=0.0, description="noise std / clip norm")
    target_epsilon: float | None = Field(
        None, gt=0.0, description="calibrate the noise so that epsilon after all rounds is at most this"
    )
    delta: float | None = Field(
        None, gt=0.0, lt=1.0, description="default min(1e-5, 1 / num_clients^1.1); must be below 1 / num_clients"
    )
    sampling: Literal["poisson", "fixed"] = Field(
        "poisson",
        description="client sampling under central DP: poisson (each client joins a round with probability "
        "per_round / num_clients; add/remove-one adjacency) or fixed (exactly per_round without replacement; "
        "replace-one adjacency, which costs more epsilon)",
    )
    adaptive_clip: bool = Field(False, description="move the clip norm to a quantile of update norms (central)")
    target_quantile: float = Field(0.5, gt=0.0, lt=1.0)
    clip_lr: float = Field(0.2, gt=0.0, description="adaptive clipping's geometric step")
    secure_noise: bool | None = Field(
        None,
        description="draw DP noise (client-level and DP-SGD) from OS entropy, so that no one can regenerate it; "
        "default: on in Flower deployments, off in the simulator (seeded noise reproduces a run, but anyone who "
        "knows the run's seed can remove it from what was released)",
    )
    dp_sgd: DPSGDConfig = DPSGDConfig()
    secure_aggregation: SecureAggregationConfig = SecureAggregationConfig()

    @property
    def secret_noise(self) -> bool:
        """Whether DP noise comes from OS entropy (``secure_noise``; off unless set, or resolved for a deployment)."""
        return bool(self.secure_noise)

    @model_validator(mode="after")
    def _noise(self) -> PrivacyConfig:
        if self.client_dp == "off":
            return self
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError(
                "privacy.client_dp: set exactly one of privacy.noise_multiplier (e.g. 1.0) and "
                "privacy.target_epsilon (e.g. 4)"
            )
        if self.adaptive_clip and self.client_dp == "local":
            raise ValueError(
                "privacy.adaptive_clip needs a trusted server to count clients below the clip: "
                "use privacy.client_dp: central or a fixed clip"
            )
        return self


class AttackConfig(Section):
    """Simulated malicious clients (a seeded fraction of the fleet), to measure the defences."""

    kind: Literal["none", "sign_flip", "scale", "noise"] = "none"
    fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of clients that attack")
    scale: float = Field(10.0, gt=0.0, description="sign_flip sends -scale x the update, scale sends scale x it")
    noise_std: float = Field(1.0, gt=0.0, description="noise sends N(0, noise_std^2) in place of the update")


class LedgerConfig(Section):
    """How costs that are not measured directly are estimated."""

    watts_per_core: float = Field(
        10.0,
        gt=0.0,
        description="average power of one busy CPU core in watts; the energy estimate is "
        "CPU seconds times this (an estimate: measure your hardware for real figures)",
    )


class OutputConfig(Section):
    dir: str = "runs"
    overwrite: bool = Field(False, description="reuse runs/<name> instead of picking a fresh suffix")
    save_adapter: bool = True
    plot: bool = True
    checkpoint: bool = Field(
        True,
        description="save a checkpoint after every round, so that `fedpeft run "
        "--resume runs/<name>` goes on after a crash",
    )
    trackers: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list,
        description="also log the config, every round's metrics and the results to these trackers (through "
        "their own libraries): TensorBoard in runs/<name>/tensorboard, MLflow, Weights & Biases",
    )
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI (a server, or a store); default: a local SQLite store, <output.dir>/mlflow.db",
    )


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
    threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads, pinned; None: this run's share of the cores it may use (its affinity "
        "mask, capped by OMP_NUM_THREADS), split evenly with the other fedpeft runs on the machine and re-read "
        "each round, so runs started together never oversubscribe the CPU",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="where clients train and the server evaluates: auto (an accelerator when there is one, "
        "else cpu), cpu, cuda, cuda:N or mps; payloads and client state stay on the CPU",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="local training's compute precision: fp32, or bf16 / fp16 autocast (fp16 with a gradient "
        "scaler); trainable tensors, optimiser state and evaluation stay fp32",
    )
    data: DataConfig = DataConfig()
    partition: PartitionConfig = PartitionConfig()
    model: ModelConfig = ModelConfig()
    peft: PeftMethodConfig = Field(
        default_factory=METHOD_CONFIGS.create, description="the PEFT method (`fedpeft methods`), chosen by peft.method"
    )
    clients: ClientConfig = ClientConfig()
    strategy: StrategyConfig = Field(
        default_factory=STRATEGY_CONFIGS.create,
        description="the server strategy (`fedpeft strategies`), chosen by strategy.name",
    )
    resources: ResourcesConfig = ResourcesConfig()
    participation: ParticipationConfig = ParticipationConfig()
    compression: CompressionConfig = CompressionConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    attack: AttackConfig = AttackConfig()
    eval: EvalConfig = EvalConfig()
    ledger: LedgerConfig = LedgerConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        check_run(self)
        return self
