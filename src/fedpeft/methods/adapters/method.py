"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021), which peft does not provide.

A small residual bottleneck (down-projection, activation, zero-initialised up-projection) is attached to
the output of chosen modules through a forward hook, so the base model's own parameter names and code stay
untouched. Houlsby places one after the attention output projection and one after the feed-forward output
of every block; Pfeiffer only the latter. On a CNN (both variants) an adapter made of
1x1 convolutions follows every inverted-residual block.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from fedpeft.errors import ModelError
from fedpeft.methods.adapters.config import AdapterMethod
from fedpeft.methods.own_format import load_own, save_trainable
from fedpeft.methods.registry import MethodSpec, register
from fedpeft.methods.selective import select
from fedpeft.model.anatomy import body_blocks

ATTENTION_OUTPUTS = (r"attention\.output\.dense$", r"self_attn\.o_proj$", r"attn\.c_proj$", r"attention\.dense$")
FFN_OUTPUTS = (r"layer\.\d+\.output\.dense$", r"mlp\.down_proj$", r"mlp\.c_proj$", r"mlp\.dense_4h_to_h$")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}
CHILD = "bottleneck_adapter"


class Bottleneck(nn.Module):
    """``y + up(act(down(y)))`` on the last dimension, or on channels for (N, C, H, W) feature maps.

    Example:
        >>> a = Bottleneck(8, 2, "relu", channels_first=False)
        >>> bool((a(torch.ones(3, 8)) == 1).all())  # the up-projection starts at zero
        True
    """

    def __init__(self, dim: int, hidden: int, activation: str, channels_first: bool) -> None:
        super().__init__()
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if channels_first else nn.Linear
        self.down, self.act, self.up = layer(dim, hidden), ACTIVATIONS[activation](), layer(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)  # type: ignore[arg-type]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.up(self.act(self.down(y)))


def _after_adapter(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
    return getattr(module, CHILD)(output)


def output_width(module: nn.Module) -> tuple[int, bool]:
    """(output features or channels, whether they are channels of a feature map) of a module."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) or hasattr(m, "nf")]
    if not layers:
        raise ModelError(f"cannot attach an adapter to {type(module).__name__}: no linear or conv layer inside")
    last = layers[-1]
    if isinstance(last, nn.Conv2d):
        return last.out_channels, True
    return int(getattr(last, "out_features", None) or getattr(last, "nf")), False


def adapter_targets(model: nn.Module, cfg: AdapterMethod, task: str) -> list[str]:
    if task == "image_classification" and cfg.target_modules is None:
        container, blocks = body_blocks(model)
        residual = [i for i, b in enumerate(blocks) if type(b).__name__ == "InvertedResidual"]
        return [f"{container}.{i}" for i in (residual or range(len(blocks)))]
    if cfg.target_modules is not None:
        patterns: tuple[str, ...] = tuple(cfg.target_modules)
    else:
        patterns = FFN_OUTPUTS + (ATTENTION_OUTPUTS if cfg.method == "houlsby" else ())
    names = [n for n, _ in model.named_modules() if n and any(re.search(p, n) for p in patterns)]
    if not names:
        raise ModelError(
            f"no module matches the {cfg.method} adapter targets {list(patterns)}; set peft.target_modules to "
            "regexes naming this model's attention / feed-forward output layers"
        )
    return names


def apply_adapters(model: nn.Module, cfg: AdapterMethod, task: str) -> nn.Module:
    added = set()
    for name in adapter_targets(model, cfg, task):
        module = model.get_submodule(name)
        width, channels_first = output_width(module)
        module.add_module(
            CHILD, Bottleneck(width, max(1, width // cfg.reduction_factor), cfg.activation, channels_first)
        )
        module.register_forward_hook(_after_adapter)
        added |= {f"{name}.{CHILD}.{n}" for n, _ in getattr(module, CHILD).named_parameters()}
    return select(model, added)


HOULSBY = register(
    MethodSpec(
        "houlsby",
        "additive",
        apply_adapters,
        save_trainable,
        load_own,
        summary="Bottleneck adapters after the attention output and the feed-forward output of every block",
    )
)
PFEIFFER = register(
    MethodSpec(
        "pfeiffer",
        "additive",
        apply_adapters,
        save_trainable,
        load_own,
        summary="Bottleneck adapters after the feed-forward output of every block only",
    )
)
