"""Save format for methods peft does not have: the trainable tensors as safetensors, plus a JSON file with
the method's config and task, so that ``load`` re-applies the method to a fresh base and copies them in."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS
from fedpeft.errors import ModelError

WEIGHTS = "adapter.safetensors"
CONFIG = "fedpeft_method.json"


def save_trainable(model: nn.Module, folder: Path, cfg: MethodConfig | None, task: str) -> None:
    """Write every trainable tensor of ``model`` and the method config that made them trainable."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(folder / WEIGHTS))
    config = cfg.model_dump() if cfg is not None else {}
    (folder / CONFIG).write_text(json.dumps({"config": config, "task": task}, indent=1))


def read_saved(folder: Path) -> tuple[MethodConfig, str, dict[str, torch.Tensor]]:
    """(method config, task, tensors) from a folder written by ``save_trainable``."""
    meta_file, weights = folder / CONFIG, folder / WEIGHTS
    if not meta_file.is_file() or not weights.is_file():
        raise ModelError(f"{folder} is not a saved fedpeft adapter (expected {CONFIG} and {WEIGHTS})")
    meta = json.loads(meta_file.read_text())
    cfg: MethodConfig = METHOD_CONFIGS.validate(meta["config"])
    return cfg, str(meta["task"]), load_file(str(weights))


def copy_into(model: nn.Module, tensors: dict[str, torch.Tensor], folder: Path) -> nn.Module:
    """Copy saved tensors into the model's trainable parameters; they must match one to one."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(tensors) != set(params):
        missing, extra = sorted(set(params) - set(tensors))[:3], sorted(set(tensors) - set(params))[:3]
        raise ModelError(f"{folder}: saved tensors do not match this base model (missing {missing}, extra {extra})")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[n])
    return model


def load_own(base: nn.Module, folder: Path) -> nn.Module:
    """Re-apply a saved method to a fresh base model and copy its tensors in."""
    from fedpeft.methods.registry import METHODS

    cfg, task, tensors = read_saved(folder)
    return copy_into(METHODS.get(cfg.method).apply(base, cfg, task), tensors, folder)
