"""fedpeft's own secure aggregation of a simulated round, as a decorator that makes any fleet a ``SecureFleet``.

Every sampled client joins the key exchange; the inner fleet delivers the round's work; each client then
masks its own decoded update (the client half of ``SecureRound``, counted as that client's work) and the
server half keeps the masked vectors of the clients that replied in time and unmasks their weighted mean.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence, Set
from typing import Any

from fedpeft.client.messages import FitInstruction
from fedpeft.errors import InvalidUpdate
from fedpeft.fleet.base import Delivery, Fleet, OnReply, SecureResult, Sink
from fedpeft.fleet.secure_round import SecureAggregation, SecureRound
from fedpeft.model.lora_factors import Spec
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.privacy.secagg import SecAggError

log = logging.getLogger(__name__)


class InProcessSecAgg:
    """``fleet`` with secure aggregation (privacy/secagg.py's protocol) run in this process; ``uplink`` is the
    clients' update pipeline, which a client undoes before masking its update.

    Example:
        >>> fleet = InProcessSecAgg(SimulatedParticipation(LocalFleet(client), seed=0), client.uplink)  # doctest: +SKIP
        >>> result = fleet.secure_round(instructions, weights, spec, bound=1.0, threshold=0.6)  # doctest: +SKIP
        >>> result.accepted, result.mean is not None  # doctest: +SKIP
        (['c0', 'c2', 'c3'], True)
    """

    protocol = "fedpeft"

    def __init__(self, fleet: Fleet, uplink: UpdatePipeline) -> None:
        self.fleet = fleet
        self.uplink = uplink

    def busy(self) -> Set[str]:
        return self.fleet.busy()

    def fit(
        self, round_: int, instructions: Sequence[FitInstruction], on_reply: OnReply = None, sink: Sink = None
    ) -> Delivery:
        return self.fleet.fit(round_, instructions, on_reply, sink)

    def state_dict(self) -> dict[str, Any]:
        return self.fleet.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.fleet.load_state_dict(state)

    def secure_round(
        self,
        instructions: Sequence[FitInstruction],
        weights: Mapping[str, float],
        spec: Spec,
        *,
        bound: float,
        threshold: float,
        on_reply: OnReply = None,
    ) -> SecureResult:
        """Key exchange among all of ``instructions``' clients, their work, masking, and the unmasked mean."""
        out = SecureResult(None, [])
        if not instructions:
            out.failure = "no clients were sampled"
            return out
        start = time.perf_counter()
        rnd = SecureAggregation(threshold=threshold, bound=bound).start(
            [i.client_id for i in instructions], weights, spec
        )
        out.server_seconds += time.perf_counter() - start
        delivery = self.fleet.fit(instructions[0].round, instructions, on_reply)
        out.dropped.update(delivery.dropped)
        round_ = instructions[0].round
        used = [i.client_id for i in instructions if self._received(round_, rnd, i.client_id, delivery, spec, out)]
        start = time.perf_counter()
        try:
            out.mean = rnd.finish().delta
        except SecAggError as exc:
            out.failure = str(exc)
        out.server_seconds += time.perf_counter() - start
        out.accepted = rnd.received
        counted = any(c in out.dropped for c in delivery.stragglers)
        out.simulated_seconds = delivery.round_seconds(used, counted)
        return out

    def _received(
        self, round_: int, rnd: SecureRound, cid: str, delivery: Delivery, spec: Spec, out: SecureResult
    ) -> bool:
        """Mask one client's reply (its half) and hand it to the server half if it came in time."""
        reply = delivery.replies.get(cid)
        if reply is None:
            return False
        if isinstance(reply, str):
            out.rejected[cid] = reply
            return False
        try:
            masked = rnd.mask(cid, self.uplink.decode(reply.payload, spec))
        except InvalidUpdate as exc:
            out.rejected[cid] = f"client failed: {exc}"
            return False
        out.bytes_up[cid], out.metrics[cid] = len(masked), dict(reply.metrics)
        if cid in delivery.stragglers:  # past the deadline: a dropout to the protocol
            out.dropped[cid] = delivery.stragglers[cid]
            return False
        start = time.perf_counter()
        try:
            rnd.receive(cid, masked)
        except InvalidUpdate as exc:
            log.warning("round %d: rejected update: %s", round_, exc)
            out.rejected[cid] = str(exc)
            return False
        finally:
            out.server_seconds += time.perf_counter() - start
        return True
