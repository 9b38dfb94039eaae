"""The runtime interface: what any engine (in-process simulator, Flower) does for one round."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fedpeft.model.state import TensorDict


@dataclass
class RoundOutcome:
    """What happened in one round, as counted by the engine from the real payloads."""

    round: int
    sampled: list[str]
    accepted: list[str]
    rejected: dict[str, str] = field(default_factory=dict)
    bytes_up: int = 0
    bytes_down: int = 0
    train_seconds: float = 0.0
    aggregate_seconds: float = 0.0
    samples: int = 0
    train_loss: float = float("nan")
    status: str = "ok"
    dropped: dict[str, str] = field(default_factory=dict)  # dropouts and stragglers, with the reason
    late: list[str] = field(default_factory=list)  # stale updates from earlier rounds used in this one
    simulated_seconds: float | None = None  # round time on the simulated clock (with resources.speed_tiers)
    clients: dict[str, dict[str, float]] = field(default_factory=dict)  # per client: bytes, time, FLOPs, memory


class Runtime(Protocol):
    """An engine that runs rounds of one strategy with one client implementation."""

    global_state: TensorDict

    def run_round(self, round_: int) -> RoundOutcome: ...
