"""BitFit (Ben Zaken et al., 2022): only bias terms train."""

from __future__ import annotations

from torch import nn

from fedpeft.methods.bitfit.config import BitFitMethod
from fedpeft.methods.selective import selective_method
from fedpeft.model.anatomy import head_parameters


def biases(model: nn.Module, cfg: BitFitMethod) -> set[str]:
    head = head_parameters(model)
    return {n for n, _ in model.named_parameters() if n.endswith(".bias") and n not in head}


BITFIT = selective_method("bitfit", biases, "it has no bias parameters (e.g. Llama-style decoders)")
