"""The client side of a round: receive the global trainable state, train locally, return an update.

The same object serves every simulated client on one shared model; a Flower ClientApp wraps it unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from fedpeft.client.costs import CostMeter
from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.client.plugins import ClientPlugin, FitContext, gradient_hooks
from fedpeft.client.state_store import ClientStateStore
from fedpeft.client.trainer import LocalTrainer
from fedpeft.data.batching import ClientDataset
from fedpeft.model.state import TrainableState
from fedpeft.pipeline.compression import UpdatePipeline


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

    def fit(self, ins: FitInstruction) -> FitReply:
        cid = ins.client_id
        ctx = FitContext(
            ins.round,
            cid,
            dict(ins.config),
            self.downlink.decode(ins.payload, None, sender="server"),
            self.trainable.params,
            dict(self.store.get(cid) or {}),
            self.trainer.cfg.lr,
        )
        for plugin in self.plugins:
            plugin.receive(ctx)
        self.trainable.load(ctx.received)
        for plugin in self.plugins:
            plugin.start(ctx)
        ctx.start = {  # what was loaded is the start; only tensors set otherwise (personal ones) are copied
            n: ctx.received[n] if n in ctx.received else p.detach().clone() for n, p in self.trainable.params.items()
        }
        seed = client_seed(self.seed, ins.round, cid)
        torch.manual_seed(np.random.SeedSequence(seed).generate_state(1)[0])  # dropout masks
        data = self.data[cid]
        opt_state = self._saved(ctx.personal, self.OPT)
        steps = ins.config.get("local_steps")
        with CostMeter() as meter:
            result, new_opt = self.trainer.train(
                data,
                np.random.default_rng(seed),
                opt_state or None,
                local_steps=None if steps is None else int(steps),
                on_gradients=gradient_hooks(self.plugins, ctx),
            )
        ctx.steps = result.steps
        if result.dp is not None and self.trainer.dp is not None:
            ctx.metrics.update(self.trainer.dp.account(ctx.personal, result.dp))
        with torch.no_grad():
            ctx.update = {n: self.trainable.params[n].detach() - ctx.start[n] for n in ctx.received}
        for plugin in self.plugins:
            plugin.finish(ctx)
        if new_opt is not None:
            ctx.personal.update({self.OPT + k: v for k, v in new_opt.items()})
        residual = self._saved(ctx.personal, self.RESIDUAL) if self.uplink.error_feedback else None
        payload, residual = self.uplink.encode(
            ctx.update, seed=derived_seed(seed, 0xC0DE), reference=ctx.start, residual=residual
        )
        if residual is not None:
            ctx.personal.update({self.RESIDUAL + k: v for k, v in residual.items()})
        if ctx.personal:
            self.store.put(cid, ctx.personal)
        metrics = {
            "train_loss": result.loss,
            "steps": float(result.steps),
            "samples": float(result.samples),
            "train_seconds": result.seconds,
            "cpu_seconds": meter.cpu_seconds,
            "peak_mb": meter.peak_mb,
            "flops": result.flops,
            **ctx.metrics,
        }
        return FitReply(cid, payload, len(data), metrics)

    @staticmethod
    def _saved(personal: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in personal.items() if k.startswith(prefix)}
