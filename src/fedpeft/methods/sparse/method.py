"""Sparse fine-tuning with a fixed mask (Sung et al., 2021): a chosen ``density`` of the entries of every
weight matrix trains, through a parametrisation ``W = W0 + scatter(values)``. Only ``values`` is a trainable
tensor, so only the masked entries travel and only they have optimiser state.

The mask is fixed before round 1 and the same for all clients: by magnitude of the pretrained weights, at
random (seeded by the tensor's name, so every client draws the same), or by diagonal Fisher information.
For Fisher each participating client sums squared mini-batch gradients on its own examples and sends only
its top entries (index and score) once; the server adds the scores and keeps the top entries per tensor.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from fedpeft.errors import ModelError
from fedpeft.methods.own_format import copy_into, read_saved, save_trainable
from fedpeft.methods.registry import MethodSpec, register
from fedpeft.methods.selective import select
from fedpeft.methods.sparse.config import SparseMethod
from fedpeft.model.anatomy import head_parameters

MASK = "mask.safetensors"
Batches = Iterable[Mapping[str, torch.Tensor]]


class SparseDelta(nn.Module):
    """Parametrisation adding trainable ``values`` at fixed flat ``index`` positions of a weight.

    Example:
        >>> d = SparseDelta(torch.tensor([0, 3]))
        >>> d.values.data = torch.tensor([1.0, 2.0]); d(torch.zeros(2, 2)).tolist()
        [[1.0, 0.0], [0.0, 2.0]]
    """

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.to(torch.long))
        self.values = nn.Parameter(torch.zeros(len(index)))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        index: torch.Tensor = self.index  # type: ignore[assignment]
        flat = weight.reshape(-1).index_add(0, index, self.values.to(weight.dtype))
        return flat.view_as(weight)


def candidates(model: nn.Module, include_embeddings: bool) -> dict[str, torch.Tensor]:
    """Weight matrices of linear and conv layers (and embeddings if asked), outside the task head."""
    head = head_parameters(model)
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    kinds: tuple[type, ...] = (nn.Linear, nn.Conv2d) + ((nn.Embedding,) if include_embeddings else ())
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for mname, module in model.named_modules():
        if not isinstance(module, kinds) or f"{mname}.weight" in head:
            continue
        assert isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding))
        if id(module.weight) in embeddings and not include_embeddings:
            continue  # e.g. an LM head tied to the input embeddings
        if id(module.weight) not in seen:  # a weight shared by two modules is masked once
            seen.add(id(module.weight))
            out[f"{mname}.weight"] = module.weight
    if not out:
        raise ModelError("sparse: the model has no linear, conv or embedding weights to mask")
    return out


def kept(numel: int, density: float) -> int:
    return max(1, round(density * numel))


def choose(scores: torch.Tensor, density: float) -> torch.Tensor:
    return torch.sort(torch.topk(scores.reshape(-1), kept(scores.numel(), density)).indices).values


def static_masks(model: nn.Module, cfg: SparseMethod) -> dict[str, torch.Tensor]:
    masks = {}
    for name, weight in candidates(model, cfg.include_embeddings).items():
        if cfg.selection == "magnitude":
            masks[name] = choose(weight.detach().abs(), cfg.density)
        else:
            gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            pick = torch.randperm(weight.numel(), generator=gen)[: kept(weight.numel(), cfg.density)]
            masks[name] = torch.sort(pick).values
    return masks


def client_fisher_top(
    model: nn.Module, cfg: SparseMethod, batches: Batches
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """On one client: squared-gradient sums over its batches; returns its top (index, score) per tensor."""
    weights = candidates(model, cfg.include_embeddings)
    fisher = {n: torch.zeros_like(w) for n, w in weights.items()}
    saved = {n: w.requires_grad for n, w in weights.items()}
    for w in weights.values():
        w.requires_grad_(True)
    model.eval()  # no dropout: the scores describe the model itself
    for batch in batches:
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        for n, w in weights.items():
            if w.grad is not None:
                fisher[n] += w.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    for n, w in weights.items():
        w.requires_grad_(saved[n])
    out = {}
    for n, f in fisher.items():
        top = choose(f, cfg.density)
        out[n] = (top, f.reshape(-1)[top])
    return out


def fisher_masks(
    model: nn.Module, cfg: SparseMethod, clients: Iterable[Batches]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Agree a Fisher mask: sum the clients' sparse top scores, keep the top entries per tensor."""
    weights = candidates(model, cfg.include_embeddings)
    total = {n: torch.zeros(w.numel()) for n, w in weights.items()}
    sent = count = 0
    for batches in clients:
        for n, (idx, score) in client_fisher_top(model, cfg, batches).items():
            total[n].index_add_(0, idx, score.float())
            sent += idx.numel() * (4 + 4)  # int32 index + float32 score
        count += 1
    if count == 0:
        raise ModelError("sparse: Fisher selection needs at least one client with data")
    masks = {n: choose(t.view_as(weights[n]), cfg.density) for n, t in total.items()}
    return masks, {"mask_selection": "fisher", "clients": count, "bytes_up_once": sent}


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    trainable = set()
    for name, index in masks.items():
        mname = name.rsplit(".", 1)[0]
        module = model.get_submodule(mname)
        parametrize.register_parametrization(module, "weight", SparseDelta(index), unsafe=True)
        trainable.add(f"{mname}.parametrizations.weight.0.values")
    return select(model, trainable)


def apply_sparse(model: nn.Module, cfg: SparseMethod, task: str) -> nn.Module:
    if cfg.selection == "fisher":
        raise ModelError("sparse with selection: fisher needs the clients' data: it is chosen when a run is built")
    return apply_masks(model, static_masks(model, cfg))


def calibrate_sparse(
    model: nn.Module, cfg: SparseMethod, task: str, clients: Iterable[Batches]
) -> tuple[nn.Module, dict[str, Any]]:
    """Apply with a mask agreed from the clients' data (Fisher), or the static mask otherwise."""
    if cfg.selection != "fisher":
        return apply_sparse(model, cfg, task), {}
    masks, info = fisher_masks(model, cfg, clients)
    return apply_masks(model, masks), info


def mask_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{n}.weight": m.parametrizations.weight[0].index
        for n, m in model.named_modules()
        if parametrize.is_parametrized(m, "weight")
    }


def save_sparse(model: nn.Module, folder: Path, cfg: SparseMethod, task: str) -> None:
    save_trainable(model, folder, cfg, task)
    save_file({n: i.contiguous() for n, i in mask_of(model).items()}, str(folder / MASK))


def load_sparse(base: nn.Module, folder: Path) -> nn.Module:
    _cfg, _task, tensors = read_saved(folder)
    return copy_into(apply_masks(base, load_file(str(folder / MASK))), tensors, folder)


SPARSE = register(MethodSpec("sparse", "selective", apply_sparse, save_sparse, load_sparse, calibrate=calibrate_sparse))
