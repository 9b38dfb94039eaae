"""LayerNorm-only tuning: only normalisation layers' weights and biases train."""

from __future__ import annotations

from torch import nn

from fedpeft.methods.layernorm.config import LayerNormMethod
from fedpeft.methods.selective import selective_method

NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)  # BatchNorm: the affine part only; statistics stay


def norms(model: nn.Module, cfg: LayerNormMethod) -> set[str]:
    out = set()
    for mname, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, NORMS) or kind.endswith(("LayerNorm", "RMSNorm")):
            out |= {f"{mname}.{p}" for p, _ in module.named_parameters(recurse=False)}
    return out


LAYERNORM = selective_method("layernorm", norms, "it has no LayerNorm / RMSNorm layers")
