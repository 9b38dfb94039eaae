"""The round loop: build a run from its config, drive its rounds, write what each round and the run report.

Everything is built first (``fedpeft.build``); this module only drives: evaluate the start, run the rounds
through the engine, record each one, checkpoint, and finish with the adapter, the summary and the plots.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from fedpeft.build import build_setup
from fedpeft.build.workload import NOTHING, Provided, Setup
from fedpeft.config.names import check_names
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError
from fedpeft.fleet import cores
from fedpeft.fleet.base import close
from fedpeft.model import count_parameters
from fedpeft.model.device import describe
from fedpeft.recipe.finish import finish, report_partition
from fedpeft.recipe.progress import Progress, load_checkpoint, save_checkpoint
from fedpeft.recipe.records import add_costs, headline, round_line, round_record
from fedpeft.recipe.simulation import FleetFactory, Simulation, make_simulator
from fedpeft.report import Ledger, RunDir, summary_text
from fedpeft.report.trackers import Callbacks
from fedpeft.wrappers.client_dp import ClientLevelDP
from fedpeft.wrappers.strategy import find_layer

log = logging.getLogger(__name__)
Display = bool | Literal["lines"] | None  # what a run prints: bars, lines, nothing, or bars on a terminal


def run_experiment(
    cfg: RunConfig,
    progress: Display = None,
    resume: str | Path | None = None,
    fleet: FleetFactory | None = None,
    provided: Provided = NOTHING,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Run the configured federated job end to end; return (and save) the summary. ``progress``: True shows
    bars, "lines" one line per round, False nothing, None bars on a terminal and lines elsewhere. With ``resume`` (a run
    folder), go on from that run's last checkpoint; ``cfg`` must then be the config saved there. ``fleet``
    makes what delivers the rounds' work to the clients (Flower's, in a deployment); by default they train
    in this process. ``provided``: the caller's own model and examples; ``callbacks``: see ``Callbacks``."""
    started = time.perf_counter()
    if resume is None:
        check_names(cfg, provided.model is not None, provided.data is not None)  # before a run folder exists
    extra = [Callbacks(callbacks)] if callbacks else []
    run = RunDir.reopen(Path(resume), cfg, extra) if resume is not None else RunDir.create(cfg, extra)
    show_bars = sys.stderr.isatty() if progress is None else progress is True
    say: Callable[[str], None] = tqdm.write if show_bars else print if progress is not False else _silent
    say(f"fedpeft: run '{cfg.name}' -> {run.path}/" + (" (resuming)" if resume is not None else ""))
    try:
        setup, sim, done, state = _build(cfg, run, fleet, say, started, resume is not None, provided)
    except BaseException:
        cores.release()
        try:
            run.trackers.close(failed=True)
        finally:
            if resume is None:
                run.discard()  # a refused or broken run leaves no folder behind
        raise
    if resume is not None:
        say(f"fedpeft: resuming after round {done} of {cfg.rounds}")
    rounds = tqdm(
        range(done + 1, cfg.rounds + 1),
        desc="rounds",
        unit="round",
        disable=not show_bars,
        initial=done,
        total=cfg.rounds,
    )
    try:
        for r in rounds:
            say(_one_round(setup, sim, run, state, r, show_bars, started))
            rounds.set_postfix_str(headline(state.last_test))
    except BaseException:
        run.trackers.close(failed=True)
        raise
    finally:
        close(sim.engine.fleet)  # worker processes end with the rounds, even on an error or Ctrl-C
        cores.release()  # a finished run no longer takes a share of the machine
    rounds.close()
    summary = finish(setup, sim, run, state, started)
    run.trackers.finish(summary)
    run.trackers.close()
    say(summary_text(summary))
    return summary


def _silent(line: str) -> None:
    return None


def _build(
    cfg: RunConfig,
    run: RunDir,
    fleet: FleetFactory | None,
    say: Callable[[str], None],
    started: float,
    resuming: bool,
    provided: Provided,
) -> tuple[Setup, Simulation, int, Progress]:
    """The run's setup and engine, and where the rounds start (after a first evaluation, or a checkpoint)."""
    setup = build_setup(cfg, provided)
    report_partition(setup, run)
    if cfg.clients.per_round > len(setup.client_data):
        log.warning(
            "clients.per_round=%d is more than the %d clients the partition made: every round samples all %d",
            cfg.clients.per_round,
            len(setup.client_data),
            len(setup.client_data),
        )
    say(
        f"fedpeft: {len(setup.train):,} training examples over {len(setup.client_data)} clients "
        f"({cfg.partition.method}); {setup.trainable.numel():,} trainable parameters; built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    say(f"fedpeft: training on {describe(setup.device)}, precision {cfg.precision}")
    sim = make_simulator(setup, run.path / "client_state", fleet)
    done, state = _start(setup, sim, run, resuming)
    return setup, sim, done, state


def _start(setup: Setup, sim: Simulation, run: RunDir, resuming: bool) -> tuple[int, Progress]:
    """The rounds already done and the loop's state: from the checkpoint, or a first evaluation."""
    cfg = setup.cfg
    if resuming:
        done, state = load_checkpoint(run, sim)
        if done >= cfg.rounds:
            raise ConfigError(f"{run.path}: all {cfg.rounds} rounds already ran; its results are in summary.json")
        return done, state
    ledger = Ledger(*count_parameters(setup.model), watts_per_core=cfg.ledger.watts_per_core)
    start = time.perf_counter()
    initial, _ = setup.evaluator(sim.strategy.evaluation_state())
    ledger.seconds["evaluate"] += time.perf_counter() - start
    run.append_metrics({"round": 0, "test": initial})
    return 0, Progress(ledger, initial, initial, samples_before=setup.evaluator.samples)


def _one_round(
    setup: Setup, sim: Simulation, run: RunDir, state: Progress, r: int, show_bars: bool, started: float
) -> str:
    """Run, evaluate (when due), record and checkpoint round ``r``; return its line for the log."""
    cfg = setup.cfg
    bar = tqdm(
        total=min(cfg.clients.per_round, len(setup.client_data)),
        desc=f"round {r} clients",
        unit="client",
        leave=False,
        disable=not show_bars,
    )
    outcome = sim.run_round(r, on_client=lambda _cid: bar.update())
    bar.close()
    test, clients, eval_s = None, None, 0.0
    if r == cfg.rounds or (cfg.eval.every > 0 and r % cfg.eval.every == 0):
        start = time.perf_counter()
        test, clients = setup.evaluator(sim.strategy.evaluation_state())
        if r == cfg.rounds and clients is not None:
            clients["personalised"] = setup.evaluator.personalised(
                sim.client, sim.strategy.evaluation_state(), sim.strategy.rank, r
            )
        eval_s = time.perf_counter() - start
        state.last_test, state.last_clients = test, clients
    add_costs(state.ledger, outcome, eval_s)
    state.accepted += len(outcome.accepted)
    record = round_record(outcome, test, clients, eval_s)
    dp = find_layer(sim.strategy, ClientLevelDP)
    if dp is not None:
        record["privacy"] = {"epsilon": dp.epsilon, "clip": dp.clip}
    state.sample_eps.update({c: v["dp_epsilon"] for c, v in outcome.clients.items() if "dp_epsilon" in v})
    if sim.client.trainer.dp is not None:
        record["dp_sgd"] = {"max_client_epsilon": max(state.sample_eps.values(), default=0.0)}
    record["threads"] = torch.get_num_threads()  # (this run's share of the cores this round)
    run.append_metrics(record)
    if cfg.output.checkpoint:
        save_checkpoint(run, r, sim, state, time.perf_counter() - started)
    return round_line(outcome, test)
