"""FedProx's client half: the proximal term added to every gradient."""

from __future__ import annotations

import torch

from fedpeft.client.plugins import ClientPlugin, FitContext


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
