"""Top-k layers: the last ``k`` blocks of the body train (with the task head); everything below is frozen,
so a client's frozen lower layers could also be computed once and cached."""

from __future__ import annotations

from torch import nn

from fedpeft.errors import ModelError
from fedpeft.methods.selective import selective_method
from fedpeft.methods.top_layers.config import TopLayersMethod
from fedpeft.model.anatomy import body_blocks


def top_layers(model: nn.Module, cfg: TopLayersMethod) -> set[str]:
    container, blocks = body_blocks(model)
    if cfg.k > len(blocks):
        raise ModelError(f"peft.k={cfg.k}: the model has only {len(blocks)} blocks in {container}; lower k")
    first = len(blocks) - cfg.k
    return {f"{container}.{i}.{n}" for i in range(first, len(blocks)) for n, _ in blocks[i].named_parameters()}


TOP_LAYERS = selective_method("top_layers", top_layers, "no blocks found")
