"""Local training on one client's examples: the same loop for every PEFT method."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fedpeft.client.costs import FlopCounter, batch_units
from fedpeft.client.objectives import ClientObjective
from fedpeft.config.schema import ClientConfig
from fedpeft.data.batching import ClientDataset, shuffled_batches
from fedpeft.model.device import autocast, model_device, on_device
from fedpeft.model.state import TensorDict, TrainableState
from fedpeft.privacy.dp_sgd import DPStep, SampleLevelDP, poisson_batches
from fedpeft.privacy.noise import secret_seed


@dataclass(frozen=True)
class LocalResult:
    steps: int
    samples: int
    loss: float
    seconds: float
    flops: float = 0.0  # estimate: FLOPs of one counted step per token (or example), times those processed
    dp: DPStep | None = None  # what DP-SGD did, for the client's privacy accounting


class LocalTrainer:
    """Runs local epochs (or a fixed number of steps) of the configured optimiser on trainable tensors.

    Example:
        >>> trainer = LocalTrainer(model, TrainableState(model), ClientConfig(lr=1e-3))  # doctest: +SKIP
        >>> result, opt_state = trainer.train(data, np.random.default_rng(0))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        state: TrainableState,
        cfg: ClientConfig,
        dp: SampleLevelDP | None = None,
        precision: str = "fp32",
    ) -> None:
        self.model = model
        self.state = state
        self.cfg = cfg
        self.dp = dp  # sample-level DP-SGD, when configured (prepared on the model)
        self.precision = precision  # autocast dtype of the forward pass (fp16 adds a gradient scaler)
        self.device = model_device(model)
        self.scaler: torch.amp.GradScaler | None = None
        self.objective = ClientObjective(cfg.loss, cfg.calibration_tau)  # the client's loss (label-skew aware)
        cache = getattr(model, "prefix_cache", None)  # its fills are one-off work, not per-step cost
        self.flops = FlopCounter(None if cache is None else lambda: cache.misses)

    def make_optimizer(self, params: list[nn.Parameter] | None = None) -> torch.optim.Optimizer:
        """The configured optimiser over ``params`` (default: the model's trainable tensors)."""
        params = list(self.state.params.values()) if params is None else params
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.cfg.lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay
            )
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def train(
        self,
        data: ClientDataset,
        rng: np.random.Generator,
        opt_state: TensorDict | None = None,
        *,
        local_steps: int | None = None,
        on_gradients: Callable[[], None] | None = None,
    ) -> tuple[LocalResult, TensorDict | None]:
        """Train in place; return the result and the optimiser state to keep (if configured).

        ``local_steps`` overrides the configured budget (a client's resource tier); ``on_gradients`` runs
        after every backward pass (after DP-SGD's clipping and noise), before the optimiser step (strategy
        corrections)."""
        start = time.perf_counter()
        budget = self.cfg.local_steps if local_steps is None else local_steps
        self.objective.start(data)
        opt = self.make_optimizer()
        if opt_state is not None:
            opt.load_state_dict(unflatten_optimizer_state(opt_state, opt))
        batches, dp_opt, dp_step = self._plan(len(data), budget, rng, opt)
        params = list(self.state.params.values())
        if self.precision == "fp16" and self.scaler is None:  # one scaler for all clients: its scale carries over
            self.scaler = torch.amp.GradScaler(self.device.type)
        scaler = self.scaler
        self.model.train()
        steps = samples = units = 0
        loss_sum = torch.zeros((), device=self.device)
        with nullcontext() if self.dp is None else self.dp.hooks():
            for idx in batches:
                batch = on_device(data.batch(idx), self.device) if len(idx) else {}
                size = batch_units(batch) if batch else 0
                with self.flops.measure(size):
                    loss = self._backward(batch, len(idx), scaler)
                units += size
                if dp_opt is not None:
                    dp_opt.pre_step()  # per-example clipping, noise, averaging: sets every .grad
                self._step(opt, params, scaler, on_gradients)
                (opt if dp_opt is None else dp_opt).zero_grad(set_to_none=True)
                loss_sum += loss.detach()
                steps += 1
                samples += len(idx)
        result = LocalResult(
            steps,
            samples,
            float(loss_sum) / max(steps, 1),
            time.perf_counter() - start,
            (self.flops.per_unit or 0.0) * units,
            dp_step,
        )
        return result, flatten_optimizer_state(opt) if self.cfg.keep_optimizer_state else None

    def _step(
        self,
        opt: torch.optim.Optimizer,
        params: list[nn.Parameter],
        scaler: torch.amp.GradScaler | None,
        on_gradients: Callable[[], None] | None,
    ) -> None:
        """Gradient hooks, clipping and the optimiser step (through the fp16 scaler, which unscales first and
        skips a step whose gradients overflowed: such a step feeds no hook)."""
        if scaler is not None:
            scaler.unscale_(opt)  # hooks and clipping see true gradients
        overflow = scaler is not None and not all(bool(p.grad.isfinite().all()) for p in params if p.grad is not None)
        if on_gradients is not None and not overflow:
            on_gradients()
        if self.cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        if scaler is None:
            opt.step()
        else:
            scaler.step(opt)
            scaler.update()

    def _backward(self, batch: dict[str, torch.Tensor], size: int, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
        """One forward and backward pass (in the configured precision); returns the batch's loss."""
        with autocast(self.device, self.precision):
            if self.dp is not None:
                return self.dp.backward(lambda b: self.model(**b).loss, batch, size, self.state.params)
            loss = self.loss(batch)
        (loss if scaler is None else scaler.scale(loss)).backward()
        return loss

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's mean loss: the model's own, or the client objective's on the model's logits."""
        if self.objective.plain:
            return self.model(**batch).loss
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.objective.loss(self.model(**inputs).logits, batch["labels"])

    def _plan(
        self, n: int, budget: int | None, rng: np.random.Generator, opt: torch.optim.Optimizer
    ) -> tuple[Iterator[np.ndarray], Any, DPStep | None]:
        """The batches to train on, and under DP-SGD its optimiser and step record (Poisson-sampled batches)."""
        if self.dp is None:
            return self.shuffled(n, budget, rng), None, None
        planned = budget or self.cfg.local_epochs * math.ceil(n / self.cfg.batch_size)
        rate = min(1.0, self.cfg.batch_size / n)
        dp_step = DPStep(self.dp.noise_for(rate, planned), rate, planned)
        batches = poisson_batches(n, self.cfg.batch_size, planned, rng)
        drawn = int(rng.integers(2**63))  # (drawn either way: the batches' stream stays the same)
        generator = torch.Generator(device=self.device).manual_seed(secret_seed() if self.dp.secret_noise else drawn)
        return batches, self.dp.optimizer(opt, dp_step.noise_multiplier, self.cfg.batch_size, generator), dp_step

    def shuffled(self, n: int, budget: int | None, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Shuffled batches: ``local_epochs`` passes, or exactly ``budget`` steps over as many passes as needed."""
        steps = 0
        for _epoch in range(self.cfg.local_epochs if budget is None else 1_000_000):
            for idx in shuffled_batches(n, self.cfg.batch_size, rng):
                yield idx
                steps += 1
                if budget is not None and steps >= budget:
                    return


def flatten_optimizer_state(opt: torch.optim.Optimizer) -> TensorDict:
    """Optimiser moments as a flat tensor dict ("<param index>.<name>"), safe to store as safetensors."""
    flat: TensorDict = {}
    for index, entries in opt.state_dict()["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                flat[f"{index}.{key}"] = value.detach().clone()
    return flat


def unflatten_optimizer_state(flat: TensorDict, opt: torch.optim.Optimizer) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in flat.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": opt.state_dict()["param_groups"]}
