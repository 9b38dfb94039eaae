"""FLoRA's client half: merge the stacked factors of the rounds a client missed into its base weights."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from fedpeft.client.plugins import ClientPlugin, FitContext
from fedpeft.model.lora_factors import LoraPair, product
from fedpeft.model.state import TensorDict

STACK, WEIGHTS = "flora.stack.", "flora.weights/"
_STACK = re.compile(r"^flora\.stack\.(\d+)/(.+)$")
MERGED_FILE = "flora_merged_base.safetensors"


def _layer(model: nn.Module, module: str) -> Any:
    """The peft LoRA layer at ``module`` (it has get_base_layer() and scaling)."""
    return model.get_submodule(module)


def _version(model: nn.Module) -> int:
    return int(getattr(model, "_flora_version", 0))


@torch.no_grad()
def merge_stack(model: nn.Module, pairs: Sequence[LoraPair], stack: Mapping[str, torch.Tensor], version: int) -> None:
    """Add scale * B_stack A_stack to each adapted layer's base weight, once per version."""
    if _version(model) >= version:
        return
    for p in pairs:
        layer = _layer(model, p.module)
        adapter = p.a.split(".lora_A.")[1].split(".")[0]
        base = layer.get_base_layer().weight
        delta = product(stack[p.a], stack[p.b]) * float(layer.scaling[adapter])
        if getattr(layer, "fan_in_fan_out", False):
            delta = delta.T
        base.add_(delta.reshape(base.shape).to(base.device, base.dtype))
    model._flora_version = version  # type: ignore[assignment]


class MergeReceived(ClientPlugin):
    """FLoRA's client side: merge the stacks (or take the merged layers) it missed, drop them from what loads."""

    changes_shared_model = True  # the merges go into the model's base weights: one process must hold them

    def __init__(self, model: nn.Module, pairs: Sequence[LoraPair]) -> None:
        self.model, self.pairs = model, list(pairs)

    @torch.no_grad()
    def receive(self, ctx: FitContext) -> None:
        version, current = int(ctx.config["flora_version"]), _version(self.model)
        stacks: dict[int, TensorDict] = {}
        weights: TensorDict = {}
        for key in [k for k in ctx.received if k.startswith("flora.")]:
            tensor = ctx.received.pop(key)
            m = _STACK.match(key)
            if m:
                stacks.setdefault(int(m[1]), {})[m[2]] = tensor
            else:
                weights[key[len(WEIGHTS) :]] = tensor
        if weights and version > current:
            for p in self.pairs:
                _layer(self.model, p.module).get_base_layer().weight.copy_(weights[p.module])
            self.model._flora_version = version  # type: ignore[assignment]
        for v in sorted(stacks):
            merge_stack(self.model, self.pairs, stacks[v], v)
