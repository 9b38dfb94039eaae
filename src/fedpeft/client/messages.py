"""What crosses between server and client in a round (no torch here: a Flower ClientApp reads these before
it knows whether it has to train)."""

from __future__ import annotations

from dataclasses import dataclass, field

Scalar = int | float | str | bool


@dataclass(frozen=True)
class FitInstruction:
    """What the server sends: the round, the client it is for, tensors as bytes (the global trainable state,
    cut to the client's rank, plus whatever its strategy sends), and a small config (rank, local steps)."""

    round: int
    client_id: str
    payload: bytes
    config: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class FitReply:
    """What a client returns: its update (trainable-tensor deltas) as bytes plus counts and metrics."""

    client_id: str
    payload: bytes
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)
