"""Sample-level DP-SGD in local training: per-example gradients, clipped and noised by Opacus's DPOptimizer.

Per-example gradients come from Opacus's GradSampleModule hooks when they are exact for the model (checked
once on a real batch: the per-example gradients must sum to the batch gradient for every trainable tensor),
and otherwise from one backward pass per example, which is exact for any model (slower). Batches are
Poisson-sampled (each example joins each step with probability batch_size / n), the sampling that the RDP
accountant assumes. Each client keeps its own accounting history, so every client's epsilon is its own.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fedpeft.privacy.accounting import calibrate, rdp_epsilon

if TYPE_CHECKING:  # (Opacus is imported where it is used: it takes seconds, paid by every Flower ClientApp)
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

log = logging.getLogger(__name__)
# Opacus's backward hooks fire on the frozen base model's outputs; PyTorch warns about it every time.
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
Batch = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class DPStep:
    """One client's DP-SGD release in a round: noise multiplier, Poisson sample rate, steps."""

    noise_multiplier: float
    sample_rate: float
    steps: int


def poisson_batches(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``steps`` batches, each holding every example independently with probability batch_size / n
    (possibly none): the subsampling that DP-SGD's amplification assumes.

    Example:
        >>> [len(b) for b in poisson_batches(100, 10, 3, np.random.default_rng(0))]
        [10, 11, 11]
    """
    rate = min(1.0, batch_size / n)
    for _ in range(steps):
        yield np.flatnonzero(rng.random(n) < rate)


def epsilon_of(history: torch.Tensor, delta: float) -> float:
    """Epsilon at ``delta`` of a client's DP-SGD history: rows of (noise multiplier, sample rate, steps), each
    a Poisson-subsampled Gaussian release under add/remove-one-example adjacency (Opacus RDP)."""
    return rdp_epsilon(history.tolist(), delta)


@lru_cache(maxsize=4096)
def _calibrated(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    return calibrate(target_epsilon, delta, sample_rate, steps)


class SampleLevelDP:
    """DP-SGD for every client's local training: clip each example's gradient to ``max_grad_norm`` and add
    Gaussian noise of std ``noise_multiplier`` x ``max_grad_norm`` to the sum, per step.

    With ``target_epsilon`` each client gets the noise that keeps its own epsilon under the target if it took
    part in all ``rounds`` rounds (its sample rate is batch_size / its size).

    Example:
        >>> dp = SampleLevelDP(max_grad_norm=1.0, noise_multiplier=1.1, delta=1e-5, rounds=10)
        >>> dp.noise_for(sample_rate=0.1, steps=20)
        1.1
    """

    HISTORY = "dpsgd/history"

    def __init__(
        self,
        *,
        max_grad_norm: float,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        delta: float,
        rounds: int,
        secret_noise: bool = False,
    ) -> None:
        if (noise_multiplier is None) == (target_epsilon is None):
            raise ValueError("SampleLevelDP: give exactly one of noise_multiplier and target_epsilon")
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.rounds = rounds
        self.secret_noise = secret_noise  # the optimiser's noise generator seeded from OS entropy
        self.path = "unprepared"  # "opacus hooks" or "one backward per example", set by prepare()
        self._gsm: GradSampleModule | None = None

    def noise_for(self, sample_rate: float, steps: int) -> float:
        """The noise multiplier for a client with this sample rate taking ``steps`` steps per round."""
        if self.noise_multiplier is not None:
            return self.noise_multiplier
        assert self.target_epsilon is not None
        return _calibrated(self.target_epsilon, self.delta, round(sample_rate, 12), steps * self.rounds)

    def account(self, personal: MutableMapping[str, torch.Tensor], step: DPStep) -> dict[str, float]:
        """Append this round's release to a client's history (kept in its own state); its epsilon so far."""
        row = torch.tensor([[step.noise_multiplier, step.sample_rate, step.steps]], dtype=torch.float64)
        history = torch.cat([personal[self.HISTORY].cpu(), row]) if self.HISTORY in personal else row
        personal[self.HISTORY] = history
        return {"dp_epsilon": epsilon_of(history, self.delta), "dp_noise_multiplier": step.noise_multiplier}

    def prepare(self, model: nn.Module, params: Mapping[str, nn.Parameter], probe: Batch) -> str:
        """Choose how per-example gradients are computed for ``model``: Opacus's hooks if, on ``probe`` (a real
        batch of at least two examples), they exist for every trainable tensor and sum to the batch gradient;
        one backward pass per example otherwise. Returns the path taken."""
        from opacus import GradSampleModule

        gsm = GradSampleModule(model, batch_first=True, loss_reduction="mean", strict=False)
        bad = self._check_hooks(model, params, probe)
        if bad:
            gsm._close()
            self.path = "one backward per example"
            log.warning(
                "DP-SGD: Opacus's per-example gradients are not exact for %s; computing them with one "
                "backward pass per example instead (exact, slower)",
                ", ".join(bad[:4]),
            )
        else:
            gsm.disable_hooks()
            self._gsm = gsm
            self.path = "opacus hooks"
        return self.path

    @staticmethod
    def _check_hooks(model: nn.Module, params: Mapping[str, nn.Parameter], probe: Batch) -> list[str]:
        was_training = model.training
        model.train()
        for p in params.values():
            p.grad, p.grad_sample = None, None  # type: ignore[attr-defined]
        n = len(next(iter(probe.values())))
        model(**probe).loss.backward()
        bad = []
        for name, p in params.items():
            sample = getattr(p, "grad_sample", None)
            if p.grad is None:
                continue
            if sample is None or sample.shape != (n, *p.shape):
                bad.append(f"{name} (no per-example gradient)")
            elif not torch.allclose(sample.sum(0) / n, p.grad, rtol=1e-3, atol=1e-6 * (1 + float(p.grad.abs().max()))):
                bad.append(f"{name} (per-example gradients do not sum to the batch gradient)")
            p.grad, p.grad_sample = None, None  # type: ignore[attr-defined]
        model.train(was_training)
        return bad

    def optimizer(
        self, opt: torch.optim.Optimizer, noise_multiplier: float, expected_batch_size: int, generator: torch.Generator
    ) -> DPOptimizer:
        from opacus.optimizers import DPOptimizer

        return DPOptimizer(
            opt,
            noise_multiplier=noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
            generator=generator,
        )

    @contextmanager
    def hooks(self) -> Iterator[None]:
        """Opacus's hooks record activations only inside this block (so evaluation pays nothing)."""
        if self._gsm is None:
            yield
            return
        self._gsm.enable_hooks()
        try:
            yield
        finally:
            self._gsm.disable_hooks()

    def backward(
        self, forward: Callable[[Batch], torch.Tensor], batch: Batch, size: int, params: Mapping[str, nn.Parameter]
    ) -> torch.Tensor:
        """Set every trainable tensor's ``grad_sample`` (one gradient per example of ``batch``); return the
        batch's mean loss (detached). An empty batch gives empty per-example gradients (noise only)."""
        if size == 0:
            for p in params.values():
                p.grad_sample = p.new_zeros((0, *p.shape))  # type: ignore[attr-defined]
            return torch.zeros(())
        if self._gsm is not None:
            loss = forward(batch)
            loss.backward()
            for p in params.values():  # a tensor the forward did not use (a pooler the head skips): zeros
                if getattr(p, "grad_sample", None) is None:
                    p.grad_sample = p.new_zeros((size, *p.shape))  # type: ignore[attr-defined]
            return loss.detach()
        samples: dict[str, list[torch.Tensor]] = {n: [] for n in params}
        total = torch.zeros((), device=next(iter(params.values())).device)
        for i in range(size):
            loss = forward({k: v[i : i + 1] for k, v in batch.items()})
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (name, p), g in zip(params.items(), grads):
                samples[name].append(torch.zeros_like(p) if g is None else g)
            total += loss.detach()
        for name, p in params.items():
            p.grad_sample = torch.stack(samples[name])  # type: ignore[attr-defined]
        return total / size
