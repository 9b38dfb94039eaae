"""How a round's fit instructions reach the clients and their replies come back.

The simulator decides who trains, encodes what they receive, and validates what they send; a fleet only
delivers. ``LocalFleet`` runs the clients in this process one after another; the Flower fleet
(``fedpeft.runtime.flower``) sends them to SuperNodes as Flower messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from fedpeft.client.app import FederatedClient, FitInstruction, FitReply

log = logging.getLogger(__name__)
Delivered = dict[str, FitReply | str]  # client id -> its reply, or why none came


class Fleet(Protocol):
    def fit(self, instructions: Sequence[FitInstruction], on_reply: Callable[[str], None] | None = None
            ) -> Delivered: ...


class LocalFleet:
    """Every client trains in this process on the one shared model. A crashing client is reported, not raised.

    Example:
        >>> LocalFleet(client).fit([FitInstruction(1, "c0", payload)])["c0"].num_examples  # doctest: +SKIP
        12
    """

    def __init__(self, client: FederatedClient) -> None:
        self.client = client

    def fit(self, instructions: Sequence[FitInstruction], on_reply: Callable[[str], None] | None = None
            ) -> Delivered:
        out: Delivered = {}
        for ins in instructions:
            try:
                out[ins.client_id] = self.client.fit(ins)
            except Exception as exc:  # a crashing client is a dropout; the round goes on
                log.warning("round %d: client %s failed: %s", ins.round, ins.client_id, exc, exc_info=True)
                out[ins.client_id] = f"client failed: {type(exc).__name__}: {exc}"
            if on_reply is not None:
                on_reply(ins.client_id)
        return out
