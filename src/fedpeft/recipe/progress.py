"""What the round loop carries from round to round, and the round checkpoints that save it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from fedpeft.recipe.simulation import Simulation
from fedpeft.report import Ledger, RunDir
from fedpeft.runtime.checkpoint import Checkpoint


@dataclass
class Progress:
    """The loop's state between rounds: costs so far, the first and latest evaluations, DP-SGD epsilons.

    Example:
        >>> p = Progress(Ledger(10, 100), {"accuracy": 0.5}, {"accuracy": 0.5})
        >>> Progress.from_state_dict(p.state_dict()).initial
        {'accuracy': 0.5}
    """

    ledger: Ledger
    initial: dict[str, float]
    last_test: dict[str, float]
    last_clients: dict[str, Any] | None = None
    accepted: int = 0
    sample_eps: dict[str, float] = field(default_factory=dict)  # DP-SGD: each client's epsilon so far
    seconds: float = 0.0  # wall time of the sessions before a resume
    samples_before: list[dict[str, str]] | None = None  # greedy answers before training (causal LMs)

    def state_dict(self, elapsed: float = 0.0) -> dict[str, Any]:
        """Plain data for a checkpoint; ``elapsed`` is this session's wall time so far."""
        state = {**self.__dict__, "ledger": asdict(self.ledger), "seconds": self.seconds + elapsed}
        return {**state, "torch_rng": torch.get_rng_state()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Progress:
        """Rebuild from a checkpoint (and put torch's random state back as it was, if saved)."""
        fields = {k: v for k, v in state.items() if k != "torch_rng"}
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        return cls(**{**fields, "ledger": Ledger(**state["ledger"])})


def save_checkpoint(run: RunDir, round_: int, sim: Simulation, progress: Progress, elapsed: float) -> None:
    state = {
        "simulator": sim.engine.state_dict(),
        "strategy": sim.strategy.state_dict(),
        "progress": progress.state_dict(elapsed),
    }
    Checkpoint(run.path).save(round_, state, sim.client.store.changed_parts())


def load_checkpoint(run: RunDir, sim: Simulation) -> tuple[int, Progress]:
    """Put the engine, strategy (with its wrappers: the privacy ledger) and client states back as they were
    after the last saved round; drop the metrics of any round after it."""
    ck = Checkpoint(run.path)
    state = ck.load()
    sim.engine.load_state_dict(state["simulator"])
    sim.strategy.load_state_dict(state["strategy"])
    ck.restore_clients(sim.client.store)
    sim.client.store.take_changed()
    progress = Progress.from_state_dict(state["progress"])
    records = [r for r in run.read_metrics() if r["round"] <= ck.round]
    run.write_text("metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return ck.round, progress
