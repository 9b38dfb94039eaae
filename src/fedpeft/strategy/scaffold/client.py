"""SCAFFOLD's client half: gradient corrections and the client's control variate."""

from __future__ import annotations

import torch

from fedpeft.client.plugins import ClientPlugin, FitContext


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
        self.c = {
            k[len(self.PREFIX_C) :]: ctx.received.pop(k) for k in list(ctx.received) if k.startswith(self.PREFIX_C)
        }
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
