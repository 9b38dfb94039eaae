"""The end of a run (the adapter, the typed summary, the plots) and the partition report at its start."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fedpeft.build.workload import Setup
from fedpeft.config.names import base_model_id
from fedpeft.fleet.secure_round import frac_bits_for
from fedpeft.methods import METHODS
from fedpeft.privacy.dp_sgd import SampleLevelDP
from fedpeft.recipe.progress import Progress
from fedpeft.recipe.simulation import Simulation
from fedpeft.report import RunDir
from fedpeft.report.plots import plot_confusion, plot_curves, plot_partition
from fedpeft.report.portable import make_portable, write_model_card
from fedpeft.report.run_summary import (
    CompressionSummary,
    DataSummary,
    DPSGDSummary,
    ModelSummary,
    PrivacySummary,
    RunSummary,
    SecureSummary,
    StrategySummary,
    without_by_client,
)
from fedpeft.wrappers.client_dp import ClientLevelDP
from fedpeft.wrappers.strategy import find_layer


def report_partition(setup: Setup, run: RunDir) -> None:
    hist = setup.partition.label_histograms(setup.train.labels, setup.train.num_labels)
    clients = [{"id": cid, "size": int(sum(h)), "labels": h} for cid, h in zip(setup.partition.client_ids, hist)]
    run.write_json(
        "partition.json",
        {"method": setup.cfg.partition.method, "label_names": setup.train.label_names, "clients": clients},
    )
    if setup.cfg.output.plot:
        plot_partition(hist, setup.train.label_names, run.path / "partition.png")


def save_adapter(setup: Setup, sim: Simulation, run: RunDir) -> bool:
    """The trained adapter in the method's format, the tokenizer, what fedpeft needs to load it, and what
    transformers + peft need without fedpeft (the base's hub id, the labels, remote code for the
    mean-pooling head). True when loading it needs ``trust_remote_code``."""
    cfg = setup.cfg
    folder = run.path / "adapter"
    METHODS.get(cfg.peft.method).save(setup.model, folder, cfg.peft, setup.task)
    sim.strategy.export(folder)
    if setup.tokenizer is not None:
        setup.tokenizer.save_pretrained(str(folder))
    labels = None if setup.task == "causal_lm" else setup.train.label_names
    remote = make_portable(folder, setup.model, base_model_id(cfg.model.name), labels)
    run.write_json(
        "adapter/fedpeft.json",
        {
            "method": cfg.peft.method,
            "model": cfg.model.name,
            "base_model": base_model_id(cfg.model.name),
            "task": setup.task,
            "label_names": setup.train.label_names,
        },
    )
    return remote


def finish(setup: Setup, sim: Simulation, run: RunDir, state: Progress, started: float) -> dict[str, Any]:
    """Load the final global state, save the adapter, write summary.json and the plots; return the summary."""
    cfg = setup.cfg
    setup.trainable.load(sim.strategy.evaluation_state())
    remote = save_adapter(setup, sim, run) if cfg.output.save_adapter else False
    summary = RunSummary(
        name=cfg.name,
        run_dir=str(run.path),
        rounds=cfg.rounds,
        clients_per_round=min(cfg.clients.per_round, len(setup.client_data)),
        updates_accepted=state.accepted,
        wall_seconds=state.seconds + time.perf_counter() - started,
        initial=state.initial,
        final=state.last_test,
        per_client=None if state.last_clients is None else without_by_client(state.last_clients),
        classes=setup.evaluator.classes,
        samples=_samples(setup, state),
        data=DataSummary.of(
            cfg.data.dataset,
            len(setup.train),
            len(setup.test),
            cfg.partition.method,
            setup.partition.sizes(),
            None if setup.task == "causal_lm" else setup.test.labels,
        ),
        strategy=StrategySummary(
            cfg.strategy.name, _rank_counts(sim), cfg.robustness.aggregator, cfg.robustness.norm_bound
        ),
        privacy=_privacy(sim),
        dp_sgd=_dp_sgd(sim.client.trainer.dp, state.sample_eps),
        secure_aggregation=_secure(sim, min(cfg.clients.per_round, len(setup.client_data))),
        attack=None if cfg.attack.kind == "none" else {**cfg.attack.model_dump(), "attackers": _attackers(sim)},
        compression=CompressionSummary(
            sim.client.uplink.describe(), sim.client.downlink.describe(), sim.client.uplink.error_feedback
        ),
        model=ModelSummary(
            cfg.model.name,
            cfg.peft.method,
            METHODS.get(cfg.peft.method).family,
            setup.method_setup,
            None if setup.prefix_cache is None else setup.prefix_cache.stats(),
        ),
        ledger=state.ledger.totals(),
        outputs=(["curves.png"] if cfg.output.plot else []) + (["adapter/"] if cfg.output.save_adapter else []),
    ).to_dict()
    if cfg.output.plot and setup.evaluator.classes is not None:
        plot_confusion(setup.evaluator.classes, run.path / "confusion.png")
        summary["outputs"].insert(1, "confusion.png")
    run.write_json("summary.json", summary)
    if cfg.output.save_adapter:
        write_model_card(run.path / "adapter", summary, base_model_id(cfg.model.name), setup.task, remote)
    if cfg.output.plot:
        plot_curves(run.read_metrics(), run.path / "curves.png", summary["data"]["majority_baseline"])
    return summary


def _samples(setup: Setup, state: Progress) -> dict[str, Any] | None:
    if setup.evaluator.samples is None:
        return None
    e = setup.cfg.eval
    return {
        "before": state.samples_before,
        "after": setup.evaluator.samples,
        "decoding": "greedy",
        "max_new_tokens": e.max_new_tokens,
        "generate_examples": e.generate_examples,
        "seed": setup.cfg.seed,
    }


def _privacy(sim: Simulation) -> PrivacySummary | None:
    dp = find_layer(sim.strategy, ClientLevelDP)
    if dp is None:
        return None
    return PrivacySummary(
        dp.mode,
        dp.noise_multiplier,
        dp.clip,
        dp.epsilon,
        dp.ledger.delta,
        dp.describe(),
        dp.ledger.adjacency + " client",
        dp.ledger.accountant,
        dp.secret_noise,
    )


def _dp_sgd(dp: SampleLevelDP | None, eps: dict[str, float]) -> DPSGDSummary | None:
    if dp is None:
        return None
    values = np.array(list(eps.values()) or [0.0])
    return DPSGDSummary(
        dp.max_grad_norm,
        dp.noise_multiplier,
        dp.target_epsilon,
        dp.delta,
        dp.path,
        len(eps),
        float(values.max()),
        float(np.median(values)),
        dp.secret_noise,
    )


def _secure(sim: Simulation, per_round: int) -> SecureSummary | None:
    s = sim.secure
    if s is None:
        return None
    return SecureSummary(
        "flower secagg+" if sim.secured_by_fleet else "fedpeft",
        s.threshold,
        s.bound,
        frac_bits_for(s.bound),
        s.clients_needed(per_round),
    )


def _attackers(sim: Simulation) -> int:
    from fedpeft.wrappers.attack import Attack

    return sum(len(p.attackers) for p in sim.client.plugins if isinstance(p, Attack))


def _rank_counts(sim: Simulation) -> dict[str, int] | None:
    ranks = [p.rank for p in sim.profiles.values() if p.rank is not None]
    return {str(r): ranks.count(r) for r in sorted(set(ranks))} or None
