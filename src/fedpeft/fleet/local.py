"""The in-process fleet: every client trains in this process, one after another, on the one shared model."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence, Set
from typing import Any

from fedpeft.client.app import FederatedClient, FitInstruction
from fedpeft.fleet.base import Delivery, OnReply

log = logging.getLogger(__name__)


class LocalFleet:
    """Every client trains in this process on the one shared model. A crashing client is reported, not raised.

    Example:
        >>> LocalFleet(client).fit(1, [FitInstruction(1, "c0", payload)]).replies["c0"].num_examples  # doctest: +SKIP
        12
    """

    def __init__(self, client: FederatedClient) -> None:
        self.client = client

    def busy(self) -> Set[str]:
        return frozenset()

    def fit(self, round_: int, instructions: Sequence[FitInstruction], on_reply: OnReply = None) -> Delivery:
        out = Delivery()
        for ins in instructions:
            try:
                out.replies[ins.client_id] = self.client.fit(ins)
            except Exception as exc:  # a crashing client is a dropout; the round goes on
                log.warning("round %d: client %s failed: %s", ins.round, ins.client_id, exc, exc_info=True)
                out.replies[ins.client_id] = f"client failed: {type(exc).__name__}: {exc}"
            if on_reply is not None:
                on_reply(ins.client_id)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None
