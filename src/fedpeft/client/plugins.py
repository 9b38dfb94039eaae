"""The client halves of strategies: small hooks that run inside every client's fit, in list order.

A strategy lists the plugins its clients need (``Strategy.client_plugins``); the simulator and a Flower
ClientApp run the same objects, so no algorithm is written twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fedpeft.client.messages import Scalar
from fedpeft.model.state import TensorDict
from fedpeft.model.lora_factors import lora_pairs, truncate


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


class ProximalTerm(ClientPlugin):
    """FedProx: the gradient of mu/2 ||w - w_global||^2, added to every trainable tensor's gradient.

    Example:
        >>> ProximalTerm(0.01).mu
        0.01
    """

    def __init__(self, mu: float) -> None:
        self.mu = mu

    @torch.no_grad()
    def gradients(self, ctx: FitContext) -> None:
        for name, p in ctx.params.items():
            if p.grad is not None:
                p.grad.add_(p - ctx.start[name], alpha=self.mu)


class ControlVariates(ClientPlugin):
    """SCAFFOLD's client side: correct each gradient by c - c_i, and renew c_i as the mean of the client's
    raw mini-batch gradients over its local steps; send c_i+ - c_i beside the model delta.

    This is the gradient-based estimate (the paper's option I, averaged along the local trajectory). It stays
    in gradient units whatever the local optimiser is; option II, (w_global - w) / (steps * lr), assumes
    plain SGD and overwhelms the gradients under Adam's per-coordinate step sizes.

    Example:
        >>> ControlVariates.PREFIX_C + "w"  # how the server's c for tensor "w" travels
        'scaffold.c/w'
    """

    PREFIX_C, PREFIX_DC, PREFIX_MINE = "scaffold.c/", "scaffold.dc/", "scaffold.ci/"

    def receive(self, ctx: FitContext) -> None:
        self.c = {k[len(self.PREFIX_C):]: ctx.received.pop(k) for k in list(ctx.received) if k.startswith(self.PREFIX_C)}
        self.ci = {n: ctx.personal.get(self.PREFIX_MINE + n, torch.zeros_like(c)) for n, c in self.c.items()}
        self.correction = {n: (self.c[n] - self.ci[n]) for n in self.c}
        self.grad_sum = {n: torch.zeros_like(c) for n, c in self.c.items()}

    @torch.no_grad()
    def gradients(self, ctx: FitContext) -> None:
        for name, corr in self.correction.items():
            p = ctx.params[name]
            if p.grad is not None:
                self.grad_sum[name].add_(p.grad.float())
                p.grad.add_(corr.to(p.grad.dtype))

    def finish(self, ctx: FitContext) -> None:
        for name in self.c:
            new = self.grad_sum[name] / max(ctx.steps, 1)
            ctx.update[self.PREFIX_DC + name] = new - self.ci[name]
            ctx.personal[self.PREFIX_MINE + name] = new


class PersonalTensors(ClientPlugin):
    """Tensors that never leave the client (FedSA-LoRA's B): restored from the client's saved state (or the
    initial values on its first round) before training, saved after it. The server does not send them, so
    they are not part of the update either.

    Example:
        >>> PersonalTensors({"m.lora_B.default.weight": torch.zeros(4, 2)}).PREFIX
        'personal/'
    """

    personal = True

    PREFIX = "personal/"

    def __init__(self, initial: TensorDict) -> None:
        self.initial = initial

    @torch.no_grad()
    def start(self, ctx: FitContext) -> None:
        for name, init in self.initial.items():
            ctx.params[name].copy_(ctx.personal.get(self.PREFIX + name, init))

    def finish(self, ctx: FitContext) -> None:
        for name in self.initial:
            ctx.personal[self.PREFIX + name] = ctx.params[name].detach().clone()


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


class RankSelfPruning(ClientPlugin):
    """HetLoRA's local rank self-pruning. The tail components [ceil(gamma r), r) of every pair carry a
    regulariser lambda ||A_tail|| ||B_tail||; when its total has fallen since the client's last round, the
    client drops the tail and works at rank ceil(gamma r) from then on. Place it before ``RankMask``.

    Example:
        >>> RankSelfPruning(gamma=0.75, lam=1e-3, min_rank=1)._keep(8)
        6
    """

    personal = True

    KEY_RANK, KEY_NORM = "hetlora/rank", "hetlora/tail_norm"

    def __init__(self, gamma: float, lam: float, min_rank: int) -> None:
        self.gamma, self.lam, self.min_rank = gamma, lam, min_rank

    def receive(self, ctx: FitContext) -> None:
        tier = int(ctx.config["rank"])
        kept = ctx.personal.get(self.KEY_RANK)
        ctx.rank = min(tier, int(kept.item())) if kept is not None else tier
        self.pairs = lora_pairs(ctx.params)

    def _keep(self, rank: int) -> int:
        return max(self.min_rank, math.ceil(self.gamma * rank))

    @torch.no_grad()
    def gradients(self, ctx: FitContext) -> None:
        assert ctx.rank is not None
        lo, hi = self._keep(ctx.rank), ctx.rank
        if lo >= hi or self.lam == 0:
            return
        for p in self.pairs:
            a, b = ctx.params[p.a], ctx.params[p.b]
            na, nb = a[lo:hi].norm(), b[:, lo:hi].norm()
            if a.grad is not None and na > 0:
                a.grad[lo:hi].add_(a[lo:hi], alpha=float(self.lam * nb / na))
            if b.grad is not None and nb > 0:
                b.grad[:, lo:hi].add_(b[:, lo:hi], alpha=float(self.lam * na / nb))

    def finish(self, ctx: FitContext) -> None:
        assert ctx.rank is not None
        lo, hi = self._keep(ctx.rank), ctx.rank
        tail = sum(float(ctx.params[p.a][lo:hi].detach().norm() * ctx.params[p.b][:, lo:hi].detach().norm()) for p in self.pairs)
        before = ctx.personal.get(self.KEY_NORM)
        rank = ctx.rank
        if lo < hi and before is not None and tail < float(before):
            rank = lo
        ctx.personal[self.KEY_RANK] = torch.tensor(rank)
        ctx.personal[self.KEY_NORM] = torch.tensor(tail)
        ctx.metrics["next_rank"] = float(rank)
