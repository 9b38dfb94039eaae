"""Engines that run rounds: the in-process simulator (with its fleets) and Flower (``runtime.flower``).

Names resolve on first use, so ``fedpeft.apps.flower`` loads without torch in a ClientApp process
that has no training to do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedpeft.runtime.base import RoundOutcome, Runtime
    from fedpeft.runtime.simulator import Simulator

__all__ = ["RoundOutcome", "Runtime", "Simulator"]


def __getattr__(name: str) -> Any:
    if name in ("RoundOutcome", "Runtime"):
        from fedpeft.runtime import base

        return getattr(base, name)
    if name == "Simulator":
        from fedpeft.runtime.simulator import Simulator

        return Simulator
    raise AttributeError(f"module 'fedpeft.runtime' has no attribute {name!r}")
