"""The client side of a round: receive the global trainable state, train locally, return an update.

The same object serves every simulated client on one shared model; a Flower ClientApp wraps it unchanged.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from fedpeft.client.cohort import CohortTrainer, Member
from fedpeft.client.costs import CostMeter
from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.client.plugins import ClientPlugin, FitContext, gradient_hooks
from fedpeft.client.state_store import ClientStateStore
from fedpeft.client.trainer import LocalResult, LocalTrainer
from fedpeft.data.batching import ClientDataset
from fedpeft.model.state import TensorDict, TrainableState, load_into
from fedpeft.pipeline.compression import UpdatePipeline


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A kept tensor on the training device, except float64 ones (accounting histories: read on the CPU)."""
    return t if t.dtype == torch.float64 else t.to(device)


def client_seed(seed: int, round_: int, client_id: str) -> list[int]:
    """A seed that depends on (run seed, round, client) only, so results never depend on client order."""
    return [seed, round_, zlib.crc32(client_id.encode("utf-8"))]


def derived_seed(seed: list[int], purpose: int) -> int:
    """One 32-bit seed for one purpose (dropout masks, stochastic rounding) from a client seed."""
    return int(np.random.SeedSequence([*seed, purpose]).generate_state(1)[0])


class FederatedClient:
    """Local training for any client id, on one model shared by all of them.

    The strategy's client plugins run inside ``fit`` (proximal terms, control variates, rank masks,
    personal tensors). Each client's own state (plugins' tensors, optimiser moments, error-feedback
    residuals) lives in ``store``. ``uplink`` / ``downlink`` are the update pipelines (compression).

    Example:
        >>> client = FederatedClient(trainer, trainable, {"c0": data}, store, seed=0)  # doctest: +SKIP
        >>> reply = client.fit(FitInstruction(1, "c0", codec.encode(trainable.snapshot())))  # doctest: +SKIP
    """

    OPT = "opt/"
    RESIDUAL = "ef/"

    def __init__(
        self,
        trainer: LocalTrainer,
        trainable: TrainableState,
        data: Mapping[str, ClientDataset],
        store: ClientStateStore,
        seed: int,
        plugins: Sequence[ClientPlugin] = (),
        uplink: UpdatePipeline | None = None,
        downlink: UpdatePipeline | None = None,
    ) -> None:
        self.trainer = trainer
        self.trainable = trainable
        self.data = data
        self.store = store
        self.seed = seed
        self.plugins = list(plugins)
        self.uplink = uplink or UpdatePipeline()
        self.downlink = downlink or UpdatePipeline()
        self.spec = trainable.spec()
        self.cohort: CohortTrainer | None = None  # built on the first cohort (it checks the model)

    def fit(self, ins: FitInstruction) -> FitReply:
        ctx = self.begin(ins, self.trainable.params, self.plugins)
        seed = client_seed(self.seed, ins.round, ins.client_id)
        torch.manual_seed(np.random.SeedSequence(seed).generate_state(1)[0])  # dropout masks
        steps = ins.config.get("local_steps")
        with CostMeter() as meter:
            result, new_opt = self.trainer.train(
                self.data[ins.client_id],
                np.random.default_rng(seed),
                self._saved(ctx.personal, self.OPT) or None,
                local_steps=None if steps is None else int(steps),
                on_gradients=gradient_hooks(self.plugins, ctx),
            )
        return self.end(ctx, result, new_opt, meter.cpu_seconds, meter.peak_mb, self.plugins)

    def fit_cohort(self, instructions: Sequence[FitInstruction]) -> list[FitReply]:
        """Train these clients together, many per forward pass (``fedpeft.client.cohort``): each with its own
        copy of the trainable tensors and of the plugins; the replies are those of ``fit`` one by one (with
        dropout off, up to float rounding)."""
        if self.cohort is None:
            self.cohort = CohortTrainer(self.trainer)
        members, started = [], []
        for ins in instructions:
            params = {n: torch.nn.Parameter(p.detach().clone()) for n, p in self.trainable.params.items()}
            plugins = [copy.copy(p) for p in self.plugins]  # hooks keep per-client values on themselves
            ctx = self.begin(ins, params, plugins)
            steps = ins.config.get("local_steps")
            members.append(
                Member(
                    self.data[ins.client_id],
                    params,
                    np.random.default_rng(client_seed(self.seed, ins.round, ins.client_id)),
                    self._saved(ctx.personal, self.OPT) or None,
                    None if steps is None else int(steps),
                    gradient_hooks(plugins, ctx),
                )
            )
            started.append((ctx, plugins))
        with CostMeter() as meter:
            results = self.cohort.train(members)
        share = meter.cpu_seconds / len(members)
        return [
            self.end(ctx, result, opt, share, meter.peak_mb, plugins)
            for (ctx, plugins), (result, opt) in zip(started, results)
        ]

    def begin(
        self, ins: FitInstruction, params: dict[str, torch.nn.Parameter], plugins: Sequence[ClientPlugin]
    ) -> FitContext:
        """Everything before local training: decode what the server sent, run the plugins' receive and start
        hooks, load it into ``params`` (the shared model's trainable tensors, or a cohort member's own)."""
        received = self.downlink.decode(ins.payload, None, sender="server")
        ctx = FitContext(
            ins.round,
            ins.client_id,
            dict(ins.config),
            {n: t.to(self.trainer.device) for n, t in received.items()},
            params,
            {k: _to(v, self.trainer.device) for k, v in (self.store.get(ins.client_id) or {}).items()},
            self.trainer.cfg.lr,
        )
        for plugin in plugins:
            plugin.receive(ctx)
        load_into(params, ctx.received)
        for plugin in plugins:
            plugin.start(ctx)
        ctx.start = {  # what was loaded is the start; only tensors set otherwise (personal ones) are copied
            n: ctx.received[n] if n in ctx.received else p.detach().clone() for n, p in params.items()
        }
        return ctx

    def end(
        self,
        ctx: FitContext,
        result: LocalResult,
        new_opt: TensorDict | None,
        cpu_seconds: float,
        peak_mb: float,
        plugins: Sequence[ClientPlugin],
    ) -> FitReply:
        """Everything after local training: the update, the plugins' finish hooks, the uplink encoding, the
        client's kept state and the reply."""
        cid = ctx.client_id
        ctx.steps = result.steps
        if result.dp is not None and self.trainer.dp is not None:
            ctx.metrics.update(self.trainer.dp.account(ctx.personal, result.dp))
        with torch.no_grad():
            ctx.update = {n: ctx.params[n].detach() - ctx.start[n] for n in ctx.received}
        for plugin in plugins:
            plugin.finish(ctx)
        if new_opt is not None:
            ctx.personal.update({self.OPT + k: v for k, v in new_opt.items()})
        personal = {k: v.cpu() for k, v in ctx.personal.items()}  # encoded and kept on the CPU
        residual = self._saved(personal, self.RESIDUAL) if self.uplink.error_feedback else None
        payload, residual = self.uplink.encode(
            {n: t.cpu() for n, t in ctx.update.items()},
            seed=derived_seed(client_seed(self.seed, ctx.round, cid), 0xC0DE),
            reference={n: t.cpu() for n, t in ctx.start.items()},
            residual=residual,
        )
        if residual is not None:
            personal.update({self.RESIDUAL + k: v for k, v in residual.items()})
        if personal:
            self.store.put(cid, personal)
        metrics = {
            "train_loss": result.loss,
            "steps": float(result.steps),
            "samples": float(result.samples),
            "train_seconds": result.seconds,
            "cpu_seconds": cpu_seconds,
            "peak_mb": peak_mb,
            "flops": result.flops,
            **ctx.metrics,
        }
        return FitReply(cid, payload, len(self.data[cid]), metrics)

    @staticmethod
    def _saved(personal: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in personal.items() if k.startswith(prefix)}
