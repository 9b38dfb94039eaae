"""Selective PEFT: train a chosen subset of existing weights (plus the new task head).

Saved as safetensors of the selected tensors plus a small JSON file; loading re-applies the selection to a
fresh base model and copies the tensors in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from fedpeft.errors import ModelError
from fedpeft.methods.registry import MethodSpec, register

HEAD_MODULES = ("classifier", "score")
WEIGHTS = "selected.safetensors"
Selector = Callable[[nn.Module], set[str]]


def head_parameters(model: nn.Module) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.split(".")[0] in HEAD_MODULES}


def select(model: nn.Module, chosen: set[str]) -> nn.Module:
    chosen = chosen | head_parameters(model)
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
    return model


def selective_method(name: str, selector: Selector, missing: str) -> MethodSpec:
    """Register a selective method: ``selector`` names the base parameters to train besides the head."""

    def apply(model: nn.Module, cfg: object, task: str) -> nn.Module:
        chosen = selector(model)
        if not chosen and name != "head":
            raise ModelError(f"{name} does not apply to this model: {missing}; pick another peft.method")
        return select(model, chosen)

    def save(model: nn.Module, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(tensors, str(folder / WEIGHTS))
        (folder / "fedpeft_method.json").write_text(json.dumps({"method": name, "tensors": len(tensors)}))

    def load(base: nn.Module, folder: Path) -> nn.Module:
        model = apply(base, None, "")
        tensors = load_file(str(folder / WEIGHTS))
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if set(tensors) != set(params):
            raise ModelError(f"{folder}: saved {name} tensors do not match this base model's parameters")
        for n, p in params.items():
            p.data.copy_(tensors[n])
        return model

    return register(MethodSpec(name, "selective", apply, save, load))


def biases(model: nn.Module) -> set[str]:
    head = head_parameters(model)
    return {n for n, _ in model.named_parameters() if n.endswith(".bias") and n not in head}


def norms(model: nn.Module) -> set[str]:
    out = set()
    for mname, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, nn.LayerNorm) or kind.endswith(("LayerNorm", "RMSNorm")):
            out |= {f"{mname}.{p}" for p, _ in module.named_parameters(recurse=False)}
    return out
