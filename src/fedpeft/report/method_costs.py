"""What each PEFT method costs on a given model: trainable parameters and bytes per round, measured by
applying the method to the real model and encoding its trainable state, or the reason it does not apply."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import TypeAdapter
from torch import nn

from fedpeft.config.methods import PeftMethodConfig
from fedpeft.errors import FedPeftError
from fedpeft.methods import METHODS
from fedpeft.model import TrainableState
from fedpeft.pipeline import codec


@dataclass(frozen=True)
class MethodCost:
    name: str
    family: str
    summary: str
    trainable: int | None = None
    total: int | None = None
    update_bytes: int | None = None  # one client's encoded update (uplink); the downlink is the same size
    refused: str | None = None


def default_config(name: str, configured: object | None = None) -> object:
    """The configured section if it is this method's, else the method's defaults."""
    if getattr(configured, "method", None) == name:
        return configured
    return TypeAdapter(PeftMethodConfig).validate_python({"method": name})


def first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").replace("``", "").split())
    return text.split(". ")[0].rstrip(".")


def method_costs(
    base: nn.Module, task: str, configured: object | None = None, on_method: Callable[[str], None] | None = None
) -> list[MethodCost]:
    """Apply every registered method to a copy of ``base`` and measure it.

    Example:
        >>> costs = method_costs(model, "sequence_classification")  # doctest: +SKIP
    """
    out = []
    for name in METHODS.names():
        spec, cfg = METHODS.get(name), default_config(name, configured)
        if getattr(cfg, "selection", None) == "fisher":  # same mask size as any other selection
            cfg = cfg.model_copy(update={"selection": "magnitude"})  # type: ignore[attr-defined]
        if on_method is not None:
            on_method(name)
        summary = spec.summary or first_sentence(type(cfg).__doc__)
        try:
            model = spec.apply(copy.deepcopy(base), cfg, task)
            state = TrainableState(model)
        except (FedPeftError, ValueError) as exc:
            out.append(MethodCost(name, spec.family, summary, refused=str(exc)))
            continue
        total = sum(p.numel() for p in model.parameters())
        out.append(MethodCost(name, spec.family, summary, state.numel(), total, len(codec.encode(state.snapshot()))))
    return out


def format_size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def cost_table(costs: list[MethodCost], per_round: int) -> str:
    lines = [
        f"{'method':<11} {'family':<16} {'trainable':>12} {'share':>7} {'update':>10} "
        f"{'per round (up+down, ' + str(per_round) + ' clients)':>36}"
    ]
    for c in costs:
        if c.refused is not None:
            lines.append(f"{c.name:<11} {c.family:<16} refused: {c.refused}")
            continue
        assert c.trainable is not None and c.total is not None and c.update_bytes is not None
        lines.append(
            f"{c.name:<11} {c.family:<16} {c.trainable:>12,} {100 * c.trainable / c.total:>6.2f}% "
            f"{format_size(c.update_bytes):>10} {format_size(2 * per_round * c.update_bytes):>36}"
        )
    return "\n".join(lines)
