"""The in-process fleet: every client trains in this process on the one shared model, one after another or
``cohort`` at a time (many clients per forward pass)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence, Set
from typing import Any

from fedpeft.client.app import FederatedClient, FitInstruction, FitReply
from fedpeft.fleet.base import Delivery, OnReply, Sink, deliver

log = logging.getLogger(__name__)


class LocalFleet:
    """Every client trains in this process on the one shared model. A crashing client is reported, not raised.

    Example:
        >>> LocalFleet(client).fit(1, [FitInstruction(1, "c0", payload)]).replies["c0"].num_examples  # doctest: +SKIP
        12
    """

    def __init__(self, client: FederatedClient, cohort: int = 1) -> None:
        self.client = client
        self.cohort = cohort  # clients trained per forward pass (``FederatedClient.fit_cohort``)

    def busy(self) -> Set[str]:
        return frozenset()

    def fit(
        self, round_: int, instructions: Sequence[FitInstruction], on_reply: OnReply = None, sink: Sink = None
    ) -> Delivery:
        out = Delivery()
        if self.cohort > 1:
            return self._cohorts(instructions, on_reply, sink)
        for ins in instructions:
            reply: FitReply | str
            try:
                reply = self.client.fit(ins)
            except Exception as exc:  # a crashing client is a dropout; the round goes on
                log.warning("round %d: client %s failed: %s", ins.round, ins.client_id, exc, exc_info=True)
                reply = f"client failed: {type(exc).__name__}: {exc}"
            deliver(out, ins.client_id, reply, sink)
            if on_reply is not None:
                on_reply(ins.client_id)
        return out

    def _cohorts(self, instructions: Sequence[FitInstruction], on_reply: OnReply, sink: Sink) -> Delivery:
        out = Delivery()
        for at in range(0, len(instructions), self.cohort):
            chunk = instructions[at : at + self.cohort]
            try:
                for reply in self.client.fit_cohort(chunk):
                    deliver(out, reply.client_id, reply, sink)
            except Exception as exc:  # the cohort's clients drop out; the round goes on
                log.warning(
                    "round %d: a cohort of %d clients failed: %s", chunk[0].round, len(chunk), exc, exc_info=True
                )
                for i in chunk:
                    deliver(out, i.client_id, f"client failed: {type(exc).__name__}: {exc}", sink)
            if on_reply is not None:
                for ins in chunk:
                    on_reply(ins.client_id)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None
