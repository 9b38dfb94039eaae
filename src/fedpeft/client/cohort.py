"""Many clients per forward pass: K clients' trainable tensors trained in one pass over the shared frozen base.

The clients' batches are stacked (padded to one length and one size; padding rows carry no loss) and go
through the frozen base once. Each module that owns trainable tensors (a LoRA or IA3 layer, an adapter's
projections, a LayerNorm, a classifier) is routed: its input is split by client and the module runs once per
client with that client's own tensors, under ``torch.func.vmap``. Every client keeps its own leaf tensors, its
own optimiser (and step count) and its own gradient hooks, and its loss is the mean over its own rows, so
with dropout off each client's result equals training it alone, up to float rounding (padding changes the
shapes of the sums). A client whose batches run out leaves the cohort; the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from fedpeft.client.costs import batch_units
from fedpeft.client.objectives import ClientObjective, offset_loss
from fedpeft.client.trainer import LocalResult, LocalTrainer, flatten_optimizer_state, unflatten_optimizer_state
from fedpeft.data.batching import ClientDataset
from fedpeft.errors import ConfigError
from fedpeft.model.device import autocast, on_device
from fedpeft.model.state import TensorDict


@dataclass
class Member:
    """One client of a cohort: its data, its own trainable leaves, where its batches come from."""

    data: ClientDataset
    params: dict[str, nn.Parameter]
    rng: np.random.Generator
    opt_state: TensorDict | None = None
    local_steps: int | None = None
    on_gradients: Callable[[], None] | None = None
    batches: Iterator[np.ndarray] = field(default_factory=lambda: iter(()))
    optimizer: torch.optim.Optimizer | None = None
    steps: int = 0
    samples: int = 0
    units: int = 0
    loss_sum: float = 0.0
    objective: ClientObjective | None = None  # the client's loss (label-skew objectives shift its logits)


def routing_units(model: nn.Module, names: Sequence[str]) -> dict[str, list[str]]:
    """The modules that own the trainable tensors ``names``, each with the names (relative to it) it owns.

    A tensor belongs to its nearest peft tuner layer (LoRA and its variants, IA3, VeRA...: their forward reads
    several tensors), else to the module that holds it (a parameter container: to that container's parent).
    A unit inside another unit is merged into the outer one."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    modules = dict(model.named_modules())
    owner: dict[str, str] = {}
    for name in names:
        path = name.rsplit(".", 1)[0]
        parts = path.split(".")
        tuner = next(
            (
                ".".join(parts[:i])
                for i in range(len(parts), 0, -1)
                if isinstance(modules[".".join(parts[:i])], BaseTunerLayer)
            ),
            None,
        )
        if tuner is None and isinstance(modules[path], (nn.ParameterDict, nn.ParameterList)):
            tuner = path.rsplit(".", 1)[0]
        owner[name] = tuner if tuner is not None else path
    tops = sorted(set(owner.values()), key=len)
    outer = {u: next(t for t in tops if u == t or u.startswith(t + ".")) for u in tops}
    units: dict[str, list[str]] = {}
    for name, unit in owner.items():
        top = outer[unit]
        units.setdefault(top, []).append(name[len(top) + 1 :])
    for unit in units:
        if isinstance(modules[unit], (nn.Embedding, nn.modules.batchnorm._BatchNorm)):
            raise ConfigError(
                f"clients.cohort: the trainable {unit} ({type(modules[unit]).__name__}) does not take one input "
                "row per example; train these clients one by one (clients.cohort: 1)"
            )
    return units


class CohortTrainer:
    """Trains K clients at once on ``trainer``'s model (see the module's docstring).

    Example:
        >>> cohort = CohortTrainer(trainer)  # doctest: +SKIP
        >>> results = cohort.train([Member(data, own_params, np.random.default_rng(0)) for ...])  # doctest: +SKIP
    """

    def __init__(self, trainer: LocalTrainer) -> None:
        if trainer.dp is not None:
            raise ConfigError(
                "clients.cohort: DP-SGD clips per example inside one client's pass; use clients.cohort: 1"
            )
        for m in trainer.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
                raise ConfigError(
                    "clients.cohort: the model has batch normalisation, whose batch statistics would mix the "
                    "clients of a cohort; use clients.cohort: 1"
                )
        self.trainer = trainer
        self.model = trainer.model
        self.names = list(trainer.state.params)
        self.units = routing_units(self.model, self.names)
        self._active: list[Member] = []
        self._rows = 0

    def train(self, members: Sequence[Member]) -> list[tuple[LocalResult, TensorDict | None]]:
        """Train every member in place (its ``params``); each one's result and optimiser state to keep."""
        start = time.perf_counter()
        cfg = self.trainer.cfg
        for m in members:
            m.optimizer = self.trainer.make_optimizer(list(m.params.values()))
            if m.opt_state:
                m.optimizer.load_state_dict(unflatten_optimizer_state(m.opt_state, m.optimizer))
            budget = cfg.local_steps if m.local_steps is None else m.local_steps
            m.batches = self.trainer.shuffled(len(m.data), budget, m.rng)
            m.objective = ClientObjective(cfg.loss, cfg.calibration_tau)
            m.objective.start(m.data)
        self.model.train()
        with self._routed():
            while True:
                step = [(m, idx) for m in members if (idx := next(m.batches, None)) is not None]
                if not step:
                    break
                self._step(step)
        seconds = (time.perf_counter() - start) / max(len(members), 1)  # the cohort's time, shared
        per_unit = self.trainer.flops.per_unit or 0.0
        return [
            (
                LocalResult(m.steps, m.samples, m.loss_sum / max(m.steps, 1), seconds, per_unit * m.units),
                flatten_optimizer_state(m.optimizer) if cfg.keep_optimizer_state and m.optimizer else None,
            )
            for m in members
        ]

    def _step(self, step: list[tuple[Member, np.ndarray]]) -> None:
        """One optimiser step of every member in ``step``: one forward and backward pass over their batches."""
        batches = [m.data.batch(idx) for m, idx in step]
        stacked, rows = stack_batches(batches, int(getattr(step[0][0].data, "pad_id", 0)))
        self._active, self._rows = [m for m, _ in step], rows
        stacked = on_device(stacked, self.trainer.device)
        units = sum(batch_units(b) for b in batches)
        with self.trainer.flops.measure(units), autocast(self.trainer.device, self.trainer.precision):
            labels = stacked.pop("labels")
            logits = self.model(**stacked).logits
            losses = [
                member_loss(
                    logits[k * rows : k * rows + len(idx)],
                    labels[k * rows : k * rows + len(idx)],
                    None if m.objective is None else m.objective.offsets(logits.shape[-1]),
                )
                for k, (m, idx) in enumerate(step)
            ]
            torch.stack(losses).sum().backward()
        for (m, idx), loss, batch in zip(step, losses, batches):
            if m.on_gradients is not None:
                m.on_gradients()
            if self.trainer.cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(list(m.params.values()), self.trainer.cfg.max_grad_norm)
            assert m.optimizer is not None
            m.optimizer.step()
            m.optimizer.zero_grad(set_to_none=True)
            m.loss_sum += float(loss.detach())
            m.steps += 1
            m.samples += len(idx)
            m.units += batch_units(batch)

    @contextmanager
    def _routed(self) -> Iterator[None]:
        """Route every unit's forward through the active members' own tensors while training."""
        modules = dict(self.model.named_modules())
        for path, names in self.units.items():
            modules[path].forward = self._router(modules[path], path, names)
        try:
            yield
        finally:
            for path in self.units:
                del modules[path].forward

    def _router(self, module: nn.Module, path: str, names: list[str]) -> Callable[..., Any]:
        inside = [False]
        own = type(module).forward.__get__(module)
        full = [f"{path}.{n}" for n in names]

        def one(params: dict[str, torch.Tensor], x: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return functional_call(module, params, (x, *args), kwargs)

        def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if inside[0]:  # functional_call's own call of this module
                return own(x, *args, **kwargs)
            k = len(self._active)
            if x.shape[0] != k * self._rows:
                raise ConfigError(
                    f"clients.cohort: {path} was called with {x.shape[0]} rows first, not one per example "
                    f"({k} clients x {self._rows}); train these clients one by one (clients.cohort: 1)"
                )
            params = {n: torch.stack([m.params[f] for m in self._active]) for n, f in zip(names, full)}
            inside[0] = True
            try:
                out = vmap(
                    one, in_dims=(0, 0, None, None), randomness="different"
                )(  # each client its own dropout
                    params, x.reshape(k, x.shape[0] // k, *x.shape[1:]), args, kwargs
                )
            finally:
                inside[0] = False
            return out.reshape(x.shape[0], *out.shape[2:])

        return forward


def stack_batches(batches: Sequence[dict[str, torch.Tensor]], pad_id: int = 0) -> tuple[dict[str, torch.Tensor], int]:
    """The batches as one: each padded to the longest sequence and to the largest batch (padding rows: one
    attended token, so that no row is all padding; their labels are never read); and the rows per client."""
    rows = max(len(next(iter(b.values()))) for b in batches)
    keys = batches[0].keys()
    width = max((b["input_ids"].shape[1] for b in batches if "input_ids" in b), default=0)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for b in batches:
        for k in keys:
            t = b[k]
            if t.dim() == 2 and k in ("input_ids", "attention_mask", "labels") and width:
                value = {"labels": -100, "attention_mask": 0}.get(k, pad_id)
                t = nn.functional.pad(t, (0, width - t.shape[1]), value=value)
            extra = rows - t.shape[0]
            if extra:
                filler = torch.full((extra, *t.shape[1:]), pad_id if k == "input_ids" else 0, dtype=t.dtype)
                if k == "attention_mask":
                    filler[:, 0] = 1
                t = torch.cat([t, filler])
            out[k].append(t)
    return {k: torch.cat(v) for k, v in out.items()}, rows


def member_loss(logits: torch.Tensor, labels: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """A client's mean loss over its own rows, as the model computes it: cross-entropy per example for
    classification (its logits shifted by the client objective's ``offsets``), per target token (shifted,
    -100 ignored) for language models."""
    if labels.dim() == 2 and logits.dim() == 3:
        return nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
        )
    return offset_loss(logits, labels, offsets)
