"""The run summary, typed: what ``summary.json`` holds and ``summary_text`` reads, section by section.

``RunSummary.to_dict()`` gives the JSON form (the same keys as the sections' fields), so a summary is built
from typed parts and read back as plain data by anything downstream (benchmarks, the Python API).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Metrics = dict[str, float]


@dataclass(frozen=True)
class DataSummary:
    """The data a run trained and tested on, and how it was split over clients.

    Example:
        >>> DataSummary.of("digits", 100, 20, "iid", [30, 70], [1, 1, 2]).client_sizes["median"]
        50.0
    """

    dataset: str
    train_examples: int
    test_examples: int
    partition: str
    num_clients: int
    client_sizes: dict[str, float]
    majority_baseline: float | None

    @classmethod
    def of(
        cls,
        dataset: str,
        train: int,
        test: int,
        partition: str,
        sizes: list[int],
        test_labels: list[int] | np.ndarray | None,
    ) -> DataSummary:
        """From the client sizes and the test labels (None for language models: no majority class)."""
        s = np.array(sizes)
        majority = None
        if test_labels is not None:
            counts = np.bincount(np.asarray(test_labels))
            majority = float(counts.max() / counts.sum())
        return cls(
            dataset,
            train,
            test,
            partition,
            len(s),
            {"min": int(s.min()), "median": float(np.median(s)), "max": int(s.max())},
            majority,
        )


@dataclass(frozen=True)
class StrategySummary:
    name: str
    ranks: dict[str, int] | None
    aggregator: str
    norm_bound: float | None


@dataclass(frozen=True)
class PrivacySummary:
    """Client-level DP: the mode, the noise, the clip norm now, (epsilon, delta) so far, and what they hold
    for: the client sampling, the adjacency (which neighbouring datasets epsilon bounds) and the accountant."""

    client_dp: str
    noise_multiplier: float
    clip: float
    epsilon: float
    delta: float
    sampling: str
    adjacency: str
    accountant: str
    secret_noise: bool


@dataclass(frozen=True)
class DPSGDSummary:
    """Sample-level DP-SGD: its settings and the clients' epsilons (each protects any one of a client's
    examples, added or removed, with Poisson-sampled batches)."""

    max_grad_norm: float
    noise_multiplier: float | None
    target_epsilon: float | None
    delta: float
    per_example_gradients: str
    clients: int
    max_client_epsilon: float
    median_client_epsilon: float
    secret_noise: bool


@dataclass(frozen=True)
class SecureSummary:
    protocol: str
    threshold: float
    bound: float
    frac_bits: int
    clients_needed: int


@dataclass(frozen=True)
class CompressionSummary:
    uplink: Any
    downlink: Any
    error_feedback: bool


@dataclass(frozen=True)
class ModelSummary:
    name: str
    method: str
    family: str
    setup: dict[str, Any]
    prefix_cache: dict[str, Any] | None


@dataclass(frozen=True)
class RunSummary:
    """Everything a finished run reports. ``to_dict()`` is what ``summary.json`` holds.

    Example:
        >>> summary = fedpeft.run("configs/quickstart.yaml", ["rounds=1"])  # doctest: +SKIP
        >>> summary["final"]["accuracy"], summary["ledger"]["bytes_up"]  # doctest: +SKIP
    """

    name: str
    run_dir: str
    rounds: int
    clients_per_round: int
    updates_accepted: int
    wall_seconds: float
    initial: Metrics
    final: Metrics
    per_client: dict[str, Any] | None
    classes: dict[str, Any] | None
    samples: dict[str, Any] | None
    data: DataSummary
    strategy: StrategySummary
    privacy: PrivacySummary | None
    dp_sgd: DPSGDSummary | None
    secure_aggregation: SecureSummary | None
    attack: dict[str, Any] | None
    compression: CompressionSummary
    model: ModelSummary
    ledger: dict[str, Any]
    outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def without_by_client(clients: dict[str, Any]) -> dict[str, Any]:
    """Per-client results without the long by-client tables (they stay in metrics.jsonl)."""
    return {k: (without_by_client(v) if isinstance(v, dict) else v) for k, v in clients.items() if k != "by_client"}
