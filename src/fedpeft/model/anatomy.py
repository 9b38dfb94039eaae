"""Where things are in a model, for encoders, decoders and CNNs alike: the repeated body blocks and the
task head. Methods that act on parts of a model (top-k layers, adapters) ask here instead of hard-coding
one architecture's module names."""

from __future__ import annotations

from torch import nn

from fedpeft.errors import ModelError

HEAD_MODULES = ("classifier", "score")


def body_blocks(model: nn.Module) -> tuple[str, list[nn.Module]]:
    """(name, blocks) of the model's main stack, input to output: the ModuleList or Sequential holding the
    most parameters (BERT ``encoder.layer``, Llama ``model.layers``, MobileNetV2 ``features``).

    Example:
        >>> from fedpeft.model.mobilenet import MobileNetV2
        >>> name, blocks = body_blocks(MobileNetV2(width_mult=0.25)); name, len(blocks)
        ('features', 19)
    """
    best: tuple[int, str, list[nn.Module]] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) == 0:
            continue
        if set(name.split(".")) & {*HEAD_MODULES, "lm_head"}:
            continue  # a head is never the body, however large
        size = sum(p.numel() for p in module.parameters())
        if best is None or size > best[0]:
            best = (size, name, list(module))
    if best is None:
        raise ModelError(f"{type(model).__name__} has no stack of repeated blocks (no ModuleList / Sequential)")
    return best[1], best[2]


def head_parameters(model: nn.Module) -> set[str]:
    """Names of the new task head's parameters (``classifier`` / ``score`` at the top level)."""
    return {n for n, _ in model.named_parameters() if n.split(".")[0] in HEAD_MODULES}
