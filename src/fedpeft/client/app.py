"""The client side of a round: receive the global trainable state, train locally, return an update.

The same object serves every simulated client on one shared model; a Flower ClientApp wraps it unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from fedpeft.client.state_store import ClientStateStore
from fedpeft.client.trainer import LocalTrainer
from fedpeft.data.batching import ClientDataset
from fedpeft.model.state import TrainableState
from fedpeft.pipeline import codec


@dataclass(frozen=True)
class FitInstruction:
    """What the server sends: the round, the client it is for, and the global trainable state as bytes."""

    round: int
    client_id: str
    payload: bytes


@dataclass(frozen=True)
class FitReply:
    """What a client returns: its update (trainable-tensor deltas) as bytes plus counts and metrics."""

    client_id: str
    payload: bytes
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)


def client_seed(seed: int, round_: int, client_id: str) -> list[int]:
    """A seed that depends on (run seed, round, client) only, so results never depend on client order."""
    return [seed, round_, zlib.crc32(client_id.encode("utf-8"))]


class FederatedClient:
    """Local training for any client id, on one model shared by all of them.

    Example:
        >>> client = FederatedClient(trainer, trainable, {"c0": data}, store, seed=0)  # doctest: +SKIP
        >>> reply = client.fit(FitInstruction(1, "c0", codec.encode(trainable.snapshot())))  # doctest: +SKIP
    """

    def __init__(
        self,
        trainer: LocalTrainer,
        trainable: TrainableState,
        data: Mapping[str, ClientDataset],
        store: ClientStateStore,
        seed: int,
    ) -> None:
        self.trainer = trainer
        self.trainable = trainable
        self.data = data
        self.store = store
        self.seed = seed
        self.spec = trainable.spec()

    def fit(self, ins: FitInstruction) -> FitReply:
        global_state = codec.decode(ins.payload, self.spec, sender="server")
        self.trainable.load(global_state)
        seed = client_seed(self.seed, ins.round, ins.client_id)
        torch.manual_seed(np.random.SeedSequence(seed).generate_state(1)[0])  # dropout masks
        data = self.data[ins.client_id]
        result, opt_state = self.trainer.train(data, np.random.default_rng(seed), self.store.get(ins.client_id))
        if opt_state is not None:
            self.store.put(ins.client_id, opt_state)
        with torch.no_grad():
            delta = {n: p.detach() - global_state[n] for n, p in self.trainable.params.items()}
        metrics = {
            "train_loss": result.loss,
            "steps": float(result.steps),
            "samples": float(result.samples),
            "train_seconds": result.seconds,
        }
        return FitReply(ins.client_id, codec.encode(delta), len(data), metrics)
