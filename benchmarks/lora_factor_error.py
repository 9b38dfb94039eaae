"""How far plain FedAvg of LoRA's A and B (averaged separately) is from the exact average update, measured on
real client updates of the quickstart workload (MiniLM + LoRA r=8, Rotten Tomatoes).

Each round, FedAvg runs as usual; from the same client updates we form, per adapted layer, the exact
aggregate sum_i w_i B_i A_i (what FLoRA merges) and the naive product (sum_i w_i B_i)(sum_i w_i A_i), and
report the relative Frobenius error of the naive one's change, || naive - exact || / || exact - B A ||,
where B A is the round's starting product (the median and maximum over layers).

Run: .venv/bin/python benchmarks/lora_factor_error.py [rounds=5] [partition overrides] [threads=1]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.model.lora_factors import product
from fedpeft.recipe import make_simulator
from fedpeft.report import RunDir
from fedpeft.strategy import ClientUpdate

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def main(overrides: Sequence[str]) -> None:
    out = tempfile.mkdtemp(prefix="fedpeft-factor-error-")
    cfg = load_config(QUICKSTART, ["rounds=5", *overrides, f"output.dir={out}", "output.plot=false"])
    setup = build(cfg)
    sim = make_simulator(setup, RunDir.create(cfg).path / "client_state")
    strategy = sim.strategy
    rows = []
    original = strategy.aggregate

    def measuring(round_: int, state: dict, updates: Sequence[ClientUpdate]) -> dict:
        total = sum(u.weight for u in updates)
        errors = []
        for p in strategy.pairs:
            a = [state[p.a].float() + u.delta[p.a].float() for u in updates]
            b = [state[p.b].float() + u.delta[p.b].float() for u in updates]
            w = [u.weight / total for u in updates]
            exact = sum(wi * product(ai, bi) for wi, ai, bi in zip(w, a, b))
            naive = product(sum(wi * ai for wi, ai in zip(w, a)), sum(wi * bi for wi, bi in zip(w, b)))
            change = float((exact - product(state[p.a], state[p.b])).norm())
            if change > 0:  # a layer outside the forward pass (an unused pooler) never changes
                errors.append(float((naive - exact).norm()) / change)
        rows.append((round_, float(np.median(errors)), float(np.max(errors))))
        print(
            f"round {round_}: naive FedAvg of factors vs exact update: relative error median "
            f"{rows[-1][1]:.3f}, max {rows[-1][2]:.3f} over {len(errors)} layers",
            flush=True,
        )
        return original(round_, state, updates)

    strategy.aggregate = measuring  # type: ignore[method-assign]
    for r in range(1, cfg.rounds + 1):
        sim.run_round(r)
    print("\n| round | median relative error | max |\n|---:|---:|---:|")
    for r, med, mx in rows:
        print(f"| {r} | {med:.3f} | {mx:.3f} |")
    print(f"\nReproduce: .venv/bin/python benchmarks/lora_factor_error.py {' '.join(overrides)}".rstrip())


if __name__ == "__main__":
    main(sys.argv[1:])
