"""The client side: local training, the client app, strategy plugins, per-client state. Names resolve on
first use, so ``fedpeft.client.messages`` loads without torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedpeft.client.app import FederatedClient
    from fedpeft.client.messages import FitInstruction, FitReply
    from fedpeft.client.state_store import ClientStateStore
    from fedpeft.client.trainer import LocalResult, LocalTrainer

_WHERE = {
    "FederatedClient": "app",
    "FitInstruction": "messages",
    "FitReply": "messages",
    "ClientStateStore": "state_store",
    "LocalResult": "trainer",
    "LocalTrainer": "trainer",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fedpeft.client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fedpeft.client.{_WHERE[name]}"), name)
