"""The in-process simulator: every sampled client trains in turn on one shared frozen base model.

Only the trainable tensors are swapped in and out, and they cross the client/server boundary as real
safetensors payloads, so byte counts and validation match a deployment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from fedpeft.client.app import FederatedClient, FitInstruction
from fedpeft.errors import InvalidUpdate
from fedpeft.model.state import TensorDict
from fedpeft.pipeline import codec
from fedpeft.runtime.base import RoundOutcome
from fedpeft.strategy.base import ClientUpdate, Strategy

log = logging.getLogger(__name__)


class Simulator:
    """Runs rounds in-process. A failing client or an invalid update drops that client, not the round.

    Example:
        >>> sim = Simulator(client, FedAvg(per_round=4), client_ids, initial_state, seed=0)  # doctest: +SKIP
        >>> outcome = sim.run_round(1); outcome.bytes_up  # doctest: +SKIP
    """

    def __init__(
        self,
        client: FederatedClient,
        strategy: Strategy,
        client_ids: Sequence[str],
        initial_state: TensorDict,
        *,
        seed: int,
        min_updates: int = 1,
        max_update_bytes: int | None = None,
    ) -> None:
        self.client = client
        self.strategy = strategy
        self.client_ids = list(client_ids)
        self.global_state = initial_state
        self.min_updates = min_updates
        self.max_update_bytes = max_update_bytes
        self.spec = client.spec
        self.rng = np.random.default_rng([seed, 0x5A3F])

    def run_round(self, round_: int, on_client: Callable[[str], None] | None = None) -> RoundOutcome:
        sampled = self.strategy.configure_train(round_, self.client_ids, self.rng)
        payload = codec.encode(self.global_state)
        outcome = RoundOutcome(round_, sampled, [], bytes_down=len(payload) * len(sampled))
        updates: list[ClientUpdate] = []
        losses: list[float] = []
        for cid in sampled:
            start = time.perf_counter()
            try:
                reply = self.client.fit(FitInstruction(round_, cid, payload))
            except Exception as exc:  # a crashing client is a dropout; the round goes on
                log.warning("round %d: client %s failed: %s", round_, cid, exc, exc_info=True)
                outcome.rejected[cid] = f"client failed: {type(exc).__name__}: {exc}"
                continue
            finally:
                outcome.train_seconds += time.perf_counter() - start
                if on_client is not None:
                    on_client(cid)
            outcome.bytes_up += len(reply.payload)
            try:
                delta = codec.decode(reply.payload, self.spec, max_bytes=self.max_update_bytes, sender=cid)
            except InvalidUpdate as exc:
                log.warning("round %d: rejected update: %s", round_, exc)
                outcome.rejected[cid] = str(exc)
                continue
            updates.append(ClientUpdate(cid, delta, reply.num_examples, reply.metrics))
            outcome.samples += int(reply.metrics.get("samples", 0))
            losses.append(reply.metrics.get("train_loss", float("nan")))
        outcome.accepted = [u.client_id for u in updates]
        if losses:
            outcome.train_loss = float(np.mean(losses))
        if len(updates) < self.min_updates:
            outcome.status = "failed"
            log.warning(
                "round %d failed: %d valid update(s), %d needed", round_, len(updates), self.min_updates
            )
            return outcome
        start = time.perf_counter()
        self.global_state = self.strategy.aggregate_train(round_, self.global_state, updates)
        outcome.aggregate_seconds = time.perf_counter() - start
        return outcome
