"""Build everything a run needs from its config, run the rounds, write the outputs.

config -> data (load, split, partition) -> model (base + PEFT method) -> client -> strategy -> simulator
-> evaluation -> ledger and report.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
from fedpeft.client.plugins import ClientPlugin
from fedpeft.config.schema import RunConfig
from fedpeft.data import (
    Partition,
    TokenizedDataset,
    load_dataset,
    local_holdout,
    partition,
    tokenize,
    train_test_split,
)
from fedpeft.data.batching import CausalLMDataset
from fedpeft.data.chat import encode_chat, encode_text, prompt_ids
from fedpeft.data.dataset import Examples, GenerationDataset, ImageDataset, TextDataset
from fedpeft.data.images import PixelDataset, to_pixels
from fedpeft.errors import ConfigError
from fedpeft.evaluation import metrics, per_client_metrics, predict
from fedpeft.evaluation.classification import class_report
from fedpeft.evaluation.generative import exact_match, greedy_answers, perplexity, rouge_l
from fedpeft.evaluation.personalised import needs_personalisation, personalised_metrics, spread
from fedpeft.fleet import Fleet, InProcessSecAgg, LocalFleet, SimulatedParticipation
from fedpeft.fleet.profiles import ClientProfile, assign_profiles
from fedpeft.fleet.secure_round import SecureAggregation, frac_bits_for
from fedpeft.methods import METHODS
from fedpeft.methods.configured import apply_configured
from fedpeft.model import TrainableState, count_parameters
from fedpeft.model.load import infer_task, load_model
from fedpeft.model.prefix_cache import PrefixCache, frozen_prefix_depth
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.report import Ledger, RunDir, summary_text
from fedpeft.report.plots import plot_confusion, plot_curves, plot_partition
from fedpeft.privacy.accounting import calibrate
from fedpeft.privacy.client_dp import ClientLevelDP, ClipAndNoise
from fedpeft.privacy.dp_sgd import SampleLevelDP
from fedpeft.runtime import RoundOutcome, Simulator
from fedpeft.runtime.attacks import Attack, choose_attackers
from fedpeft.runtime.checkpoint import Checkpoint, restore, state_of
from fedpeft.strategy import STRATEGIES, Strategy
from fedpeft.strategy.robust import make_aggregator

log = logging.getLogger("fedpeft")
Inputs = TokenizedDataset | PixelDataset | CausalLMDataset  # what the model reads, per example
KINDS = {  # what a dataset holds: (the model task it needs, in words, a packaged model that reads it)
    TextDataset: ("sequence_classification", "labelled texts", "minilm"),
    ImageDataset: ("image_classification", "images", "mobilenet_v2"),
    GenerationDataset: ("causal_lm", "texts for a language model", "smollm2"),
}


@dataclass
class Setup:
    """Everything built from a config before the first round (shared by runs and benchmarks)."""

    cfg: RunConfig
    task: str
    train: Examples
    test: Examples
    partition: Partition
    model: nn.Module
    tokenizer: Any
    trainable: TrainableState
    client_data: dict[str, Inputs]
    test_data: Inputs
    local_test: Inputs | None
    local_groups: list[tuple[str, np.ndarray]]
    method_setup: dict[str, Any]
    prefix_cache: PrefixCache | None = None
    classes: dict[str, Any] | None = None  # per-class recall and confusion matrix of the latest evaluation
    samples: list[dict[str, str]] | None = None  # a few greedy answers of the latest evaluation (causal LMs)


def configure_torch(cfg: RunConfig) -> None:
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)


def build(cfg: RunConfig) -> Setup:
    """Load and split the data, partition it, and build the shared model with the PEFT method applied."""
    configure_torch(cfg)
    task = infer_task(cfg.model.name)
    dataset = load_dataset(cfg.data)
    holds, what, fix = KINDS[type(dataset)]
    if holds != task:
        raise ConfigError(f"data.dataset={cfg.data.dataset} holds {what}, but model.name={cfg.model.name!r} is a "
                          f"{task.replace('_', ' ')} model: set model.name={fix} (or a matching model)")
    train, test = train_test_split(dataset, cfg.data, cfg.seed)
    parts = partition(train.labels, train.groups, cfg.partition, cfg.seed)
    train_idx, local_idx = local_holdout(parts.indices, cfg.data.local_test_fraction, cfg.seed)
    model, tokenizer = load_model(
        cfg.model.name,
        task,
        train.label_names,
        seed=cfg.seed,
        pooling=cfg.model.pooling,
        trust_remote_code=cfg.model.trust_remote_code,
        num_layers=cfg.model.num_layers,
    )
    tokens = model_inputs(train, tokenizer, cfg)
    client_data = {cid: tokens.subset(idx) for cid, idx in zip(parts.client_ids, train_idx)}
    model, method_setup = apply_configured(cfg, model, task, client_data)
    prepare = STRATEGIES.get(cfg.strategy.name).prepare_model
    if prepare is not None:
        prepare(model)
    trainable = TrainableState(model)
    cache = PrefixCache(model, frozen_prefix_depth(model)) if cfg.model.cache_frozen_prefix else None
    local_test, groups = None, []
    if cfg.data.local_test_fraction > 0:
        flat = np.concatenate(local_idx)
        local_test = tokens.subset(flat)
        offsets = np.cumsum([0] + [len(i) for i in local_idx])
        groups = [(cid, np.arange(offsets[k], offsets[k + 1])) for k, cid in enumerate(parts.client_ids)]
    return Setup(
        cfg, task, train, test, Partition(parts.client_ids, train_idx), model, tokenizer, trainable,
        client_data, model_inputs(test, tokenizer, cfg), local_test, groups, method_setup, cache,
    )


def model_inputs(examples: Examples, tokenizer: Any, cfg: RunConfig) -> Inputs:
    """Token ids for texts, resized pixels for images: computed once, batched by index later."""
    if isinstance(examples, ImageDataset):
        return to_pixels(examples, cfg.data.image_size)
    if isinstance(examples, GenerationDataset):
        if examples.targets is None:
            return encode_text(tokenizer, examples.texts, cfg.data.max_length)
        return encode_chat(tokenizer, examples.texts, examples.targets, cfg.data.max_length)
    return tokenize(examples, tokenizer, cfg.data.max_length)


def evaluate(setup: Setup, state: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Central test metrics of ``state``, and per-client metrics on local held-out examples if configured.
    The per-class recall and confusion matrix of the latest evaluation are kept in ``setup.classes``."""
    setup.trainable.load(state)
    if setup.task == "causal_lm":
        return evaluate_generation(setup)
    num_labels = setup.train.num_labels
    assert not isinstance(setup.test_data, CausalLMDataset)
    pred = predict(setup.model, setup.test_data, setup.cfg.eval.batch_size)
    setup.classes = class_report(pred, setup.train.label_names)
    central = metrics(pred, num_labels)
    if setup.local_test is None:
        return central, None
    assert not isinstance(setup.local_test, CausalLMDataset)
    pred = predict(setup.model, setup.local_test, setup.cfg.eval.batch_size)
    clients = per_client_metrics(pred, setup.local_groups, num_labels)
    return central, {**spread(clients), "by_client": clients}


def evaluate_generation(setup: Setup) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Perplexity on the held-out texts; with answers, greedy answers to the first ``eval.generate_examples``
    held-out prompts scored by ROUGE-L and exact match (a few kept in ``setup.samples``); per-client
    perplexity on local held-out examples if configured."""
    cfg, test = setup.cfg.eval, setup.test
    assert isinstance(setup.test_data, CausalLMDataset) and isinstance(test, GenerationDataset)
    central = {**perplexity(setup.model, setup.test_data, cfg.batch_size), "examples": float(len(test))}
    n = min(cfg.generate_examples, len(test))
    if test.targets is not None and n:
        prompts = [prompt_ids(setup.tokenizer, q) for q in test.texts[:n]]
        answers = greedy_answers(setup.model, setup.tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                                 batch_size=min(cfg.batch_size, 16))
        central["answered"] = float(n)
        central["rouge_l"] = rouge_l(answers, test.targets[:n])
        central["exact_match"] = exact_match(answers, test.targets[:n])
        setup.samples = [{"prompt": q, "reference": r, "answer": a}
                         for q, r, a in list(zip(test.texts, test.targets, answers))[:3]]
    if setup.local_test is None:
        return central, None
    assert isinstance(setup.local_test, CausalLMDataset)
    clients = {cid: perplexity(setup.model, setup.local_test.subset(idx), cfg.batch_size)
               for cid, idx in setup.local_groups if len(idx)}
    return central, {**spread(clients, "perplexity"), "by_client": clients}


def evaluate_personalised(setup: Setup, sim: Simulation, round_: int) -> dict[str, Any] | None:
    """Per-client metrics of each client's own model (rank, personal tensors, local fine-tuning), if any
    differs from the global one."""
    cfg = setup.cfg
    if setup.local_test is None or not needs_personalisation(sim.client, cfg.eval.finetune_steps):
        return None
    batch, num_labels = cfg.eval.batch_size, setup.train.num_labels
    if setup.task == "causal_lm":
        key = "perplexity"

        def score(model: nn.Module, data: Any) -> dict[str, float]:
            return perplexity(model, data, batch)
    else:
        key = "accuracy"

        def score(model: nn.Module, data: Any) -> dict[str, float]:
            return metrics(predict(model, data, batch), num_labels)

    clients = personalised_metrics(
        sim.client, sim.strategy.evaluation_state(), setup.local_groups, setup.local_test,
        rank_of=sim.strategy.rank, finetune_steps=cfg.eval.finetune_steps, round_=round_, score=score,
    )
    return {**spread(clients, key), "finetune_steps": cfg.eval.finetune_steps, "by_client": clients}


@dataclass(frozen=True)
class Simulation:
    """What ``make_simulator`` builds: the round engine and the parts of the run it reports on (the client,
    client-level DP's ledger, the clients' resources, the simulated attackers)."""

    engine: Simulator
    client: FederatedClient
    privacy: ClientLevelDP | None = None
    profiles: dict[str, ClientProfile] = field(default_factory=dict)
    attackers: list[str] = field(default_factory=list)

    @property
    def strategy(self) -> Strategy:
        return self.engine.strategy

    @property
    def global_state(self) -> dict[str, torch.Tensor]:
        return self.engine.global_state

    @property
    def client_ids(self) -> list[str]:
        return self.engine.client_ids

    @property
    def secure(self) -> SecureAggregation | None:
        return self.engine.secure

    @property
    def secured_by_fleet(self) -> bool:
        """Secure aggregation is on and the deployment's fleet runs its own protocol (Flower's SecAgg+)."""
        return self.engine.secure_protocol not in (None, InProcessSecAgg.protocol)

    def run_round(self, round_: int, on_client: Callable[[str], None] | None = None) -> RoundOutcome:
        return self.engine.run_round(round_, on_client)


def make_strategy(setup: Setup, profiles: dict[str, ClientProfile]) -> Strategy:
    """The configured strategy with its robust aggregator, initialized on the model's trainable state."""
    cfg = setup.cfg
    spec = STRATEGIES.get(cfg.strategy.name)
    if cfg.resources.rank_tiers and not spec.ranks:
        raise ConfigError(f"strategy.name={cfg.strategy.name} cannot serve clients of mixed LoRA ranks: drop "
                          "resources.rank_tiers or pick fedavg, ffa_lora, fedsa_lora, flora, flexlora or hetlora")
    robust, part = cfg.robustness, cfg.participation
    strategy = spec.build(cfg, setup.model)
    strategy.mean = make_aggregator(robust.aggregator, trim_fraction=robust.trim_fraction,
                                    byzantine=robust.byzantine, m=robust.multi_krum)
    strategy.norm_bound = robust.norm_bound
    ranks = {c: p.rank for c, p in profiles.items() if p.rank is not None}
    strategy.initialize(setup.trainable.snapshot(), ranks, num_clients=len(setup.client_data),
                        keep_past=part.max_staleness if part.stragglers == "stale" else 0)
    return strategy


def make_simulator(setup: Setup, state_dir: Path, fleet: Callable[[list[str]], Fleet] | None = None) -> Simulation:
    """The configured strategy, client, fleet and round engine for a built setup; clients keep their own state
    (optimiser moments, personal tensors) under ``state_dir``. ``fleet`` makes what delivers the rounds' work
    from the client ids (Flower's, in a deployment); by default the clients train in this process, with
    simulated participation (dropouts, speeds, deadlines) and fedpeft's own secure aggregation."""
    cfg = setup.cfg
    ids = list(setup.client_data)
    profiles = assign_profiles(ids, cfg.resources, cfg.seed)
    strategy = make_strategy(setup, profiles)
    plugins = strategy.client_plugins()
    privacy = None
    if cfg.privacy.client_dp != "off":
        privacy = install_client_dp(cfg, strategy, plugins, len(ids))
        strategy.secure_weight = lambda num_examples: 1.0  # type: ignore[method-assign]  # (until DP wraps)
    trainer = LocalTrainer(setup.model, setup.trainable, cfg.clients)
    if cfg.privacy.dp_sgd.enabled:
        trainer.dp = install_dp_sgd(setup)
    attackers = choose_attackers(ids, cfg.attack.fraction, cfg.seed) if cfg.attack.kind != "none" else []
    if attackers:
        plugins.append(Attack(cfg.attack.kind, attackers, scale=cfg.attack.scale, noise_std=cfg.attack.noise_std,
                              seed=cfg.seed))
    compression = cfg.compression
    client = FederatedClient(
        trainer, setup.trainable, setup.client_data, ClientStateStore(state_dir), cfg.seed, plugins=plugins,
        uplink=UpdatePipeline.from_config(compression.uplink, compression.feedback),
        downlink=UpdatePipeline.from_config(compression.downlink),
    )
    sa = cfg.privacy.secure_aggregation
    secure = SecureAggregation(threshold=sa.threshold, bound=sa.bound) if sa.enabled else None
    if fleet is not None:
        delivery = fleet(ids)
    else:
        delivery = SimulatedParticipation(LocalFleet(client), profiles, cfg.participation, seed=cfg.seed)
        if secure is not None:
            delivery = InProcessSecAgg(delivery, client.uplink)
    engine = Simulator(
        strategy, delivery, ids, seed=cfg.seed, uplink=client.uplink, downlink=client.downlink,
        num_examples={c: len(d) for c, d in setup.client_data.items()}, min_updates=cfg.strategy.min_updates,
        max_update_norm=cfg.robustness.max_update_norm, secure=secure,
    )
    return Simulation(engine, client, privacy, profiles, attackers)


def install_client_dp(cfg: RunConfig, strategy: Strategy, plugins: list[ClientPlugin], num_clients: int
                      ) -> ClientLevelDP:
    """DP-FedAvg on ``strategy`` and its clients' ``plugins``, with the noise calibrated to a target epsilon if
    asked."""
    p = cfg.privacy
    rate = min(cfg.clients.per_round, num_clients) / num_clients
    delta = p.delta or 1 / num_clients**1.1
    z = p.noise_multiplier
    if z is None:
        assert p.target_epsilon is not None
        z = calibrate(p.target_epsilon, delta, rate if p.client_dp == "central" else 1.0, cfg.rounds)
    dp = ClientLevelDP(strategy, clip=p.clip, noise_multiplier=z, mode=p.client_dp, sample_rate=rate, delta=delta,
                       adaptive=p.adaptive_clip, target_quantile=p.target_quantile, clip_lr=p.clip_lr, seed=cfg.seed)
    plugins.append(ClipAndNoise(z if p.client_dp == "local" else 0.0, seed=cfg.seed))
    return dp


def install_dp_sgd(setup: Setup) -> SampleLevelDP:
    """Sample-level DP-SGD for local training, with its per-example gradient path checked on a real batch."""
    cfg = setup.cfg
    d = cfg.privacy.dp_sgd
    dp = SampleLevelDP(max_grad_norm=d.max_grad_norm, noise_multiplier=d.noise_multiplier,
                       target_epsilon=d.target_epsilon, delta=d.delta, rounds=cfg.rounds)
    data = max(setup.client_data.values(), key=len)
    if len(data) < 2:
        raise ConfigError("privacy.dp_sgd: every client holds a single example; DP-SGD needs local batches")
    dp.prepare(setup.model, setup.trainable.params, data.batch(np.arange(min(4, len(data)))))
    log.info("DP-SGD per-example gradients: %s", dp.path)
    return dp


@dataclass
class Progress:
    """What the round loop carries from round to round (and a checkpoint saves)."""

    STATE = ("ledger", "initial", "last_test", "last_clients", "accepted", "sample_eps", "seconds", "torch_rng",
             "samples_before")

    ledger: dict[str, Any]
    initial: dict[str, float]
    last_test: dict[str, float]
    last_clients: dict[str, Any] | None = None
    accepted: int = 0
    sample_eps: dict[str, float] = field(default_factory=dict)  # DP-SGD: each client's epsilon so far
    seconds: float = 0.0  # wall time of the sessions before a resume
    torch_rng: torch.Tensor = field(default_factory=torch.get_rng_state)
    samples_before: list[dict[str, str]] | None = None  # greedy answers before training (causal LMs)


def save_checkpoint(run: RunDir, round_: int, sim: Simulation, progress: Progress) -> None:
    progress.torch_rng = torch.get_rng_state()
    state = {"simulator": sim.engine.state_dict(), "strategy": state_of(sim.strategy), "progress": state_of(progress),
             "privacy": None if sim.privacy is None else state_of(sim.privacy)}
    Checkpoint(run.path).save(round_, state, sim.client.store.take_changed())


def load_checkpoint(run: RunDir, sim: Simulation) -> tuple[int, Progress]:
    """Put the simulator, strategy, privacy ledger and client states back as they were after the last saved
    round; drop the metrics of any round after it."""
    ck = Checkpoint(run.path)
    state = ck.load()
    sim.engine.load_state_dict(state["simulator"])
    restore(sim.strategy, state["strategy"])
    if sim.privacy is not None:
        restore(sim.privacy, state["privacy"])
    ck.restore_clients(sim.client.store)
    sim.client.store.take_changed()
    p = state["progress"]
    progress = Progress(**{k: p[k] for k in Progress.STATE})
    torch.set_rng_state(progress.torch_rng)
    records = [r for r in run.read_metrics() if r["round"] <= ck.round]
    run.write_text("metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return ck.round, progress


def run_experiment(
    cfg: RunConfig, progress: bool | None = None, resume: str | Path | None = None,
    fleet: Callable[[list[str]], Fleet] | None = None,
) -> dict[str, Any]:
    """Run the configured federated job end to end; return (and save) the summary. With ``resume`` (a run
    folder), go on from that run's last checkpoint; ``cfg`` must then be the config saved there. ``fleet``
    makes what delivers the rounds' work to the clients from their ids (Flower's, in a deployment); by
    default they train in this process."""
    started = time.perf_counter()
    run = RunDir(Path(resume)) if resume is not None else RunDir.create(cfg)
    show_bars = sys.stderr.isatty() if progress is None else progress
    say = tqdm.write if show_bars else print
    say(f"fedpeft: run '{cfg.name}' -> {run.path}/" + (" (resuming)" if resume is not None else ""))
    setup = build(cfg)
    report_partition(setup, run)
    say(
        f"fedpeft: {len(setup.train):,} training examples over {len(setup.client_data)} clients "
        f"({cfg.partition.method}); {setup.trainable.numel():,} trainable parameters; built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    sim = make_simulator(setup, run.path / "client_state", fleet)
    ledger = Ledger(*count_parameters(setup.model), watts_per_core=cfg.ledger.watts_per_core)
    if resume is not None:
        done, state = load_checkpoint(run, sim)
        ledger = Ledger(**state.ledger)
        if done >= cfg.rounds:
            raise ConfigError(f"{run.path}: all {cfg.rounds} rounds already ran; its results are in summary.json")
        say(f"fedpeft: resuming after round {done} of {cfg.rounds}")
    else:
        done = 0
        start = time.perf_counter()
        initial, _ = evaluate(setup, sim.strategy.evaluation_state())
        ledger.seconds["evaluate"] += time.perf_counter() - start
        run.append_metrics({"round": 0, "test": initial})
        state = Progress(asdict(ledger), initial, initial, samples_before=setup.samples)
    prior = state.seconds
    rounds = tqdm(range(done + 1, cfg.rounds + 1), desc="rounds", unit="round", disable=not show_bars,
                  initial=done, total=cfg.rounds)
    for r in rounds:
        clients_bar = tqdm(total=min(cfg.clients.per_round, len(setup.client_data)), desc=f"round {r} clients",
                           unit="client", leave=False, disable=not show_bars)
        outcome = sim.run_round(r, on_client=lambda _cid: clients_bar.update())
        clients_bar.close()
        test, clients, eval_s = None, None, 0.0
        due = r == cfg.rounds or (cfg.eval.every > 0 and r % cfg.eval.every == 0)
        if due:
            start = time.perf_counter()
            test, clients = evaluate(setup, sim.strategy.evaluation_state())
            if r == cfg.rounds and clients is not None:
                clients["personalised"] = evaluate_personalised(setup, sim, r)
            eval_s = time.perf_counter() - start
            state.last_test, state.last_clients = test, clients
        for cost in outcome.clients.values():
            if "cpu_seconds" in cost:
                cost["energy_wh_estimate"] = ledger.energy_wh_of(cost["cpu_seconds"])
        ledger.add_round(
            bytes_up=outcome.bytes_up, bytes_down=outcome.bytes_down, train_seconds=outcome.train_seconds,
            aggregate_seconds=outcome.aggregate_seconds, evaluate_seconds=eval_s,
            failed=outcome.status != "ok", rejected=len(outcome.rejected), samples=outcome.samples,
            dropped=len(outcome.dropped), late=len(outcome.late), simulated_seconds=outcome.simulated_seconds,
            clients=outcome.clients,
        )
        state.accepted += len(outcome.accepted)
        record = round_record(outcome, test, clients, eval_s)
        if sim.privacy is not None:
            record["privacy"] = {"epsilon": sim.privacy.epsilon, "clip": sim.privacy.clip}
        state.sample_eps.update({c: v["dp_epsilon"] for c, v in outcome.clients.items() if "dp_epsilon" in v})
        if sim.client.trainer.dp is not None:
            record["dp_sgd"] = {"max_client_epsilon": max(state.sample_eps.values(), default=0.0)}
        run.append_metrics(record)
        if cfg.output.checkpoint:
            state.ledger, state.seconds = asdict(ledger), prior + time.perf_counter() - started
            save_checkpoint(run, r, sim, state)
        say(round_line(outcome, test))
        rounds.set_postfix_str(headline(state.last_test))
    rounds.close()
    state.seconds = prior
    summary = finish(setup, sim, run, ledger, state, started)
    say(summary_text(summary))
    return summary


def round_record(
    outcome: RoundOutcome, test: dict[str, float] | None, clients: dict[str, Any] | None, eval_s: float
) -> dict[str, Any]:
    return {
        "round": outcome.round,
        "status": outcome.status,
        "sampled": len(outcome.sampled),
        "accepted": len(outcome.accepted),
        "rejected": outcome.rejected,
        "dropped": outcome.dropped,
        "late": outcome.late,
        "simulated_seconds": outcome.simulated_seconds,
        "train_loss": outcome.train_loss,
        "samples": outcome.samples,
        "bytes_up": outcome.bytes_up,
        "bytes_down": outcome.bytes_down,
        "seconds": {"train": outcome.train_seconds, "aggregate": outcome.aggregate_seconds, "evaluate": eval_s},
        "clients": outcome.clients,
        "test": test,
        "per_client": clients,
    }


def round_line(outcome: RoundOutcome, test: dict[str, float] | None) -> str:
    quality = headline(test) if test else "no eval"
    status = "" if outcome.status == "ok" else f" [{outcome.status.upper()}]"
    dropped = f", {len(outcome.rejected)} rejected" if outcome.rejected else ""
    dropped += f", {len(outcome.dropped)} dropped/late" if outcome.dropped else ""
    dropped += f", {len(outcome.late)} stale used" if outcome.late else ""
    return (
        f"round {outcome.round:>3}{status}: {len(outcome.accepted)}/{len(outcome.sampled)} updates{dropped}, "
        f"train loss {outcome.train_loss:.3f}, {quality}, up {outcome.bytes_up / 1e6:.2f} MB, "
        f"{outcome.train_seconds:.1f} s"
    )


def headline(test: dict[str, float]) -> str:
    """The figures a round line shows: accuracy and macro-F1, or perplexity (and ROUGE-L) for a causal LM."""
    if "accuracy" in test:
        return f"test acc {test['accuracy']:.3f} f1 {test['macro_f1']:.3f}"
    rouge = f" rouge-L {test['rouge_l']:.3f}" if "rouge_l" in test else ""
    return f"test ppl {test['perplexity']:.2f}{rouge}"


def report_partition(setup: Setup, run: RunDir) -> None:
    hist = setup.partition.label_histograms(setup.train.labels, setup.train.num_labels)
    run.write_json(
        "partition.json",
        {
            "method": setup.cfg.partition.method,
            "label_names": setup.train.label_names,
            "clients": [
                {"id": cid, "size": int(sum(h)), "labels": h} for cid, h in zip(setup.partition.client_ids, hist)
            ],
        },
    )
    if setup.cfg.output.plot:
        plot_partition(hist, setup.train.label_names, run.path / "partition.png")


def finish(setup: Setup, sim: Simulation, run: RunDir, ledger: Ledger, state: Progress, started: float
           ) -> dict[str, Any]:
    cfg = setup.cfg
    setup.trainable.load(sim.strategy.evaluation_state())
    if cfg.output.save_adapter:
        folder = run.path / "adapter"
        METHODS.get(cfg.peft.method).save(setup.model, folder, cfg.peft, setup.task)
        sim.strategy.export(folder)
        if setup.tokenizer is not None:
            setup.tokenizer.save_pretrained(str(folder))
        run.write_json("adapter/fedpeft.json", {
            "method": cfg.peft.method, "model": cfg.model.name, "task": setup.task,
            "label_names": setup.train.label_names,
        })
    sizes = np.array(setup.partition.sizes())
    counts = np.bincount(setup.test.labels, minlength=setup.test.num_labels)
    summary: dict[str, Any] = {
        "name": cfg.name,
        "run_dir": str(run.path),
        "rounds": cfg.rounds,
        "clients_per_round": min(cfg.clients.per_round, len(sizes)),
        "updates_accepted": state.accepted,
        "wall_seconds": state.seconds + time.perf_counter() - started,
        "initial": state.initial,
        "final": state.last_test,
        "per_client": None if state.last_clients is None else _without_by_client(state.last_clients),
        "classes": setup.classes,
        "samples": None if setup.samples is None else {"before": state.samples_before, "after": setup.samples,
                                                      "decoding": "greedy", "max_new_tokens": cfg.eval.max_new_tokens,
                                                      "generate_examples": cfg.eval.generate_examples,
                                                      "seed": cfg.seed},
        "data": {
            "dataset": cfg.data.dataset,
            "train_examples": len(setup.train),
            "test_examples": len(setup.test),
            "partition": cfg.partition.method,
            "num_clients": len(sizes),
            "client_sizes": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
            "majority_baseline": None if setup.task == "causal_lm" else float(counts.max() / counts.sum()),
        },
        "strategy": {"name": cfg.strategy.name, "ranks": _rank_counts(sim),
                     "aggregator": cfg.robustness.aggregator, "norm_bound": cfg.robustness.norm_bound},
        "privacy": None if sim.privacy is None else {
            "client_dp": cfg.privacy.client_dp, "noise_multiplier": sim.privacy.noise_multiplier,
            "clip": sim.privacy.clip, "epsilon": sim.privacy.epsilon, "delta": sim.privacy.ledger.delta,
        },
        "dp_sgd": dp_sgd_summary(sim.client.trainer.dp, state.sample_eps),
        "secure_aggregation": None if sim.secure is None else {
            "protocol": "flower secagg+" if sim.secured_by_fleet else "fedpeft",
            "threshold": sim.secure.threshold, "bound": sim.secure.bound, "frac_bits": frac_bits_for(sim.secure.bound),
            "clients_needed": sim.secure.clients_needed(min(cfg.clients.per_round, len(sizes))),
        },
        "attack": None if cfg.attack.kind == "none" else {**cfg.attack.model_dump(), "attackers": len(sim.attackers)},
        "compression": {"uplink": sim.client.uplink.describe(), "downlink": sim.client.downlink.describe(),
                        "error_feedback": sim.client.uplink.error_feedback},
        "model": {
            "name": cfg.model.name,
            "method": cfg.peft.method,
            "family": METHODS.get(cfg.peft.method).family,
            "setup": setup.method_setup,
            "prefix_cache": None if setup.prefix_cache is None else setup.prefix_cache.stats(),
        },
        "ledger": ledger.totals(),
        "outputs": (["curves.png"] if cfg.output.plot else []) + (["adapter/"] if cfg.output.save_adapter else []),
    }
    if cfg.output.plot and setup.classes is not None:
        plot_confusion(setup.classes, run.path / "confusion.png")
        summary["outputs"].insert(1, "confusion.png")
    run.write_json("summary.json", summary)
    if cfg.output.plot:
        plot_curves(run.read_metrics(), run.path / "curves.png", summary["data"]["majority_baseline"])
    return summary


def dp_sgd_summary(dp: SampleLevelDP | None, eps: dict[str, float]) -> dict[str, Any] | None:
    if dp is None:
        return None
    values = np.array(list(eps.values()) or [0.0])
    return {"max_grad_norm": dp.max_grad_norm, "noise_multiplier": dp.noise_multiplier,
            "target_epsilon": dp.target_epsilon, "delta": dp.delta, "per_example_gradients": dp.path,
            "clients": len(eps), "max_client_epsilon": float(values.max()),
            "median_client_epsilon": float(np.median(values))}


def _without_by_client(clients: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (_without_by_client(v) if isinstance(v, dict) else v) for k, v in clients.items() if k != "by_client"
    }


def _rank_counts(sim: Simulation) -> dict[str, int] | None:
    ranks = [p.rank for p in sim.profiles.values() if p.rank is not None]
    return {str(r): ranks.count(r) for r in sorted(set(ranks))} or None
