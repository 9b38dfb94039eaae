"""FFA-LoRA (Sun et al., 2024): freeze every LoRA A at its shared seeded init; only B trains and travels.

With A the same on every client, sum_i w_i B_i A = (sum_i w_i B_i) A, so averaging B is the exact average
of the clients' updates, and each update is about half of LoRA's. Mixed ranks stay exact: a low-rank
client's B is zero in the columns it lacks.
"""

from __future__ import annotations

from torch import nn

from fedpeft.model.lora_factors import lora_pairs
from fedpeft.strategy.base import STRATEGIES, StrategySpec
from fedpeft.strategy.fedavg.server import FedAvg
from fedpeft.strategy.ffa_lora.config import FFALoraStrategy


def freeze_lora_a(model: nn.Module) -> None:
    """Make every LoRA A factor a frozen, shared tensor (the model was built from the run's seed)."""
    params = dict(model.named_parameters())
    pairs = lora_pairs(params)
    if not pairs:
        raise ValueError("FFA-LoRA needs LoRA layers in the model: set peft.method: lora")
    for p in pairs:
        params[p.a].requires_grad_(False)


class FFALora(FedAvg):
    """FedAvg over B (and any head); A is not trainable, so it never travels.

    Example:
        >>> FFALora(per_round=10).server_lr
        1.0
    """


STRATEGIES.register("ffa_lora")(
    StrategySpec(lambda s, per_round, _model: FFALora(per_round, s.server_lr), FFALoraStrategy, freeze_lora_a)
)
