"""FedSA-LoRA's client half: B stays on the client."""

from __future__ import annotations

import torch

from fedpeft.client.plugins import ClientPlugin, FitContext
from fedpeft.model.state import TensorDict


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
