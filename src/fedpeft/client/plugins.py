"""Client plugins: small hooks that run inside every client's fit, in list order.

A strategy lists the plugins its clients need (``Strategy.client_plugins``; each strategy's own client half
lives in its folder, ``strategy/<name>/client.py``), and the build step appends the cross-cutting client mods
(``fedpeft.wrappers``); the simulator and a Flower node run the same objects, so no algorithm is written
twice. ``RankMask`` is here because every strategy that serves mixed ranks uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fedpeft.client.messages import Scalar
from fedpeft.model.lora_factors import lora_pairs, truncate
from fedpeft.model.state import TensorDict


@dataclass
class FitContext:
    """What the hooks of one client's fit see and change.

    Example:
        >>> FitContext(3, "c7", {"rank": 4}, {}, {}, {}, lr=1e-3).round
        3
    """

    round: int
    client_id: str
    config: dict[str, Scalar]
    received: TensorDict  # the server's tensors (hooks may take theirs out before the rest is loaded)
    params: dict[str, nn.Parameter]  # the trainable tensors of the (shared) model
    personal: TensorDict  # this client's saved state; each plugin keeps its own keys
    lr: float
    rank: int | None = None  # this client's LoRA rank, when clients have ranks
    start: TensorDict = field(default_factory=dict)  # trainable values when local training began
    update: TensorDict = field(default_factory=dict)  # what goes back: deltas of the received tensors
    steps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


class ClientPlugin:
    """No-op hooks; a plugin overrides the ones it needs. ``personal`` marks plugins that make a client's own
    model differ from the global one (personal tensors, its rank): personalised evaluation replays them."""

    personal: bool = False
    changes_shared_model: bool = False  # it writes to the shared model itself (FLoRA's merges): one process only

    def receive(self, ctx: FitContext) -> None:
        """Before the received tensors are loaded into the model."""

    def start(self, ctx: FitContext) -> None:
        """After loading, before local training (``ctx.start`` is taken after this)."""

    def gradients(self, ctx: FitContext) -> None:
        """After each backward pass, before the optimiser step."""

    def finish(self, ctx: FitContext) -> None:
        """After training; ``ctx.update`` holds the deltas and may be changed or extended."""


def gradient_hooks(plugins: Sequence[ClientPlugin], ctx: FitContext) -> Callable[[], None] | None:
    """One callable running every plugin's ``gradients`` hook in order, or None when none has one."""
    hooks = [p for p in plugins if type(p).gradients is not ClientPlugin.gradients]
    if not hooks:
        return None

    def run() -> None:
        for hook in hooks:
            hook.gradients(ctx)

    return run


class RankMask(ClientPlugin):
    """Clients of mixed LoRA ranks on one model built at the largest rank: a client of rank r uses the first
    r components of every LoRA pair, receives and sends only those, and its other components stay zero.

    Example:
        >>> ctx = FitContext(1, "c0", {"rank": 2}, {}, {}, {}, lr=0.1)
        >>> RankMask().receive(ctx); ctx.rank
        2
    """

    personal = True

    def receive(self, ctx: FitContext) -> None:
        if ctx.rank is None:
            ctx.rank = int(ctx.config["rank"])
        self.pairs = lora_pairs(ctx.params)
        for p in self.pairs:  # pad what arrived at the client's rank to the model's shapes
            for name, dim in ((p.a, 0), (p.b, 1)):
                if name in ctx.received:
                    t = ctx.received[name]
                    full = ctx.params[name].shape[dim]
                    if t.shape[dim] < full:
                        pad_shape = list(t.shape)
                        pad_shape[dim] = full - t.shape[dim]
                        ctx.received[name] = torch.cat([t, t.new_zeros(pad_shape)], dim)

    @torch.no_grad()
    def start(self, ctx: FitContext) -> None:
        for p in self.pairs:
            if p.a in ctx.params:
                ctx.params[p.a][ctx.rank :].zero_()
            ctx.params[p.b][:, ctx.rank :].zero_()

    @torch.no_grad()
    def gradients(self, ctx: FitContext) -> None:
        for p in self.pairs:
            a, b = ctx.params[p.a].grad if p.a in ctx.params else None, ctx.params[p.b].grad
            if a is not None:
                a[ctx.rank :].zero_()
            if b is not None:
                b[:, ctx.rank :].zero_()

    def finish(self, ctx: FitContext) -> None:
        assert ctx.rank is not None
        ctx.update = truncate(ctx.update, self.pairs, ctx.rank)
        ctx.metrics["rank"] = float(ctx.rank)
