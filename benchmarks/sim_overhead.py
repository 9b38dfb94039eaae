"""Simulator overhead: fedpeft's simulator against a bare peft + PyTorch loop doing the same steps.

Both sides use one MiniLM + LoRA model built from configs/quickstart.yaml, the same sampled clients, the
same batches in the same order and the same dropout seeds, so they perform exactly the same optimiser steps
and must end at the same global weights (checked). The bare loop has no payloads, no validation, no
ledger: the ratio is what fedpeft's machinery costs. Runs alternate (bare, fedpeft, bare, fedpeft, ...)
and the best of each is compared, since the machine is shared and noisy.

Run: .venv/bin/python benchmarks/sim_overhead.py [--rounds 3] [--clients 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from fedpeft.build import Setup
from fedpeft.build import build_setup as build
from fedpeft.client import ClientStateStore, FederatedClient, LocalTrainer
from fedpeft.client.app import client_seed
from fedpeft.config import load_config
from fedpeft.data.batching import shuffled_batches
from fedpeft.fleet import LocalFleet
from fedpeft.runtime import Simulator
from fedpeft.strategy import FedAvg, sample_clients


def fedpeft_rounds(setup: Setup, rounds: int, spill_dir: str) -> tuple[float, dict[str, torch.Tensor]]:
    cfg = setup.cfg
    strategy = FedAvg(cfg.clients.per_round)
    strategy.initialize(setup.trainable.snapshot(), num_clients=len(setup.client_data))
    client = FederatedClient(
        LocalTrainer(setup.model, setup.trainable, cfg.clients),
        setup.trainable,
        setup.client_data,
        ClientStateStore(spill_dir),
        cfg.seed,
        plugins=strategy.client_plugins(),
    )
    sim = Simulator(strategy, LocalFleet(client), list(setup.client_data), seed=cfg.seed)
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        sim.run_round(r)
    return time.perf_counter() - start, sim.global_state


def bare_rounds(setup: Setup, rounds: int) -> tuple[float, dict[str, torch.Tensor]]:
    """The same federated computation written as directly as possible with peft and PyTorch."""
    cfg, model = setup.cfg, setup.model
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    global_state = {n: p.detach().clone() for n, p in params.items()}
    ids = list(setup.client_data)
    sampler = np.random.default_rng([cfg.seed, 0x5A3F])  # the simulator's sampling stream
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        chosen = sample_clients(ids, cfg.clients.per_round, sampler)
        total = sum(len(setup.client_data[c]) for c in chosen)
        mean = {n: torch.zeros_like(w) for n, w in global_state.items()}
        for cid in chosen:
            data = setup.client_data[cid]
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(global_state[n])
            seed = client_seed(cfg.seed, r, cid)
            torch.manual_seed(np.random.SeedSequence(seed).generate_state(1)[0])
            rng = np.random.default_rng(seed)
            opt = torch.optim.AdamW(list(params.values()), lr=cfg.clients.lr, weight_decay=cfg.clients.weight_decay)
            model.train()
            for _ in range(cfg.clients.local_epochs):
                for idx in shuffled_batches(len(data), cfg.clients.batch_size, rng):
                    model(**data.batch(idx)).loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for n, p in params.items():
                    mean[n].add_(p.detach() - global_state[n], alpha=len(data) / total)
        global_state = {n: global_state[n] + mean[n] for n in global_state}
    return time.perf_counter() - start, global_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=5, help="clients per round")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config("configs/quickstart.yaml", [f"clients.per_round={args.clients}", "output.plot=false"])
    times: dict[str, list[float]] = {"bare": [], "fedpeft": []}
    states: dict[str, dict[str, torch.Tensor]] = {}
    for rep in range(args.repeats):
        for name in ("bare", "fedpeft"):
            setup = build(cfg)  # a fresh, identical model (same seed) for every timed run
            if name == "bare":
                seconds, states[name] = bare_rounds(setup, args.rounds)
            else:
                seconds, states[name] = fedpeft_rounds(setup, args.rounds, tempfile.mkdtemp())
            times[name].append(seconds)
            print(f"  repeat {rep + 1}: {name:<8} {seconds:7.2f} s", flush=True)
    diff = max(float((states["bare"][n] - states["fedpeft"][n]).abs().max()) for n in states["bare"])
    best_bare, best_sim = min(times["bare"]), min(times["fedpeft"])
    print()
    print(
        f"workload: MiniLM + LoRA (quickstart), {args.rounds} rounds x {args.clients} clients, "
        f"{cfg.clients.local_epochs} local epochs of batch {cfg.clients.batch_size}, torch threads "
        f"{torch.get_num_threads()}"
    )
    print(f"bare peft + PyTorch loop : {best_bare:7.2f} s (best of {args.repeats})")
    print(f"fedpeft simulator        : {best_sim:7.2f} s (best of {args.repeats})")
    print(f"wall-time ratio          : {best_sim / best_bare:.3f}  (target <= 1.10)")
    print(f"max |difference| of final global weights: {diff:.2e} (same steps on the same batches)")
    print(
        "reproduce: .venv/bin/python benchmarks/sim_overhead.py "
        f"--rounds {args.rounds} --clients {args.clients} --repeats {args.repeats}"
    )


if __name__ == "__main__":
    main()
