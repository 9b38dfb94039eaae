"""What federation costs on each task: the base model, federated LoRA and centralised LoRA on the same data
and the same optimiser steps.

Federated rows split the training data IID over `clients` clients and sample `per_round` of them per round,
each taking `steps` local steps; centralised rows put all the data on one client taking per_round x steps
steps per round. Rounds, batch size and learning rate are the task config's. The base row is the federated
run's round-0 evaluation. FedAvg of m clients x s local steps moves the model about as far as s large-batch
steps, against m x s sequential steps centrally; the "fedavgm" rows give the server a learning rate of m
and momentum 0.5 (FedAvgM), the same client work. Target: federated within 2 points (classification) or 5%
relative perplexity (language models) of centralised. Results are appended to runs/benchmarks/tasks.jsonl as
each run finishes.

Run: .venv/bin/python benchmarks/tasks.py [--only "sentiment,digits"] [overrides, e.g. threads=1]
     .venv/bin/python benchmarks/tasks.py --report
"""

from __future__ import annotations

from pathlib import Path

from harness import CONFIG_DIR, chosen, latest, parser, reproduce, run_and_append, tradeoffs

# task: (config, clients, per_round, steps, extra overrides)
TASKS: dict[str, tuple[str, int, int, int, list[str]]] = {
    "sentiment": ("quickstart.yaml", 50, 10, 8, ["eval.every=0", "output.save_adapter=false"]),
    "digits": ("digits.yaml", 10, 5, 10, ["eval.every=0", "output.save_adapter=false"]),
    "chat": ("chat.yaml", 20, 4, 4, ["output.save_adapter=false"]),
    "hamlet": (
        "hamlet.yaml",
        20,
        5,
        4,
        ["output.save_adapter=false", "data.local_test_fraction=0", "eval.per_client=false"],
    ),
}


def runs(task: str) -> dict[str, list[str]]:
    _, clients, per_round, steps, extra = TASKS[task]
    common = ["partition.method=iid", *extra]
    return {
        "federated": [
            *common,
            f"partition.num_clients={clients}",
            f"clients.per_round={per_round}",
            f"clients.local_steps={steps}",
        ],
        "centralised": [
            *common,
            "partition.num_clients=1",
            "clients.per_round=1",
            f"clients.local_steps={per_round * steps}",
        ],
        "fedavgm": [
            *common,
            f"partition.num_clients={clients}",
            f"clients.per_round={per_round}",
            f"clients.local_steps={steps}",
            "strategy.name=fedavgm",
            "strategy.momentum=0.5",
            f"strategy.server_lr={per_round}",
        ],
    }


def row(name: str, s: dict) -> dict:
    task, setting = name.split(" / ")
    return {
        "task": task,
        "setting": setting,
        "initial": s["initial"],
        "final": s["final"],
        "bytes_up": s["ledger"]["bytes_up"],
        "wall_seconds": s["wall_seconds"],
        "train_seconds": s["ledger"]["seconds"]["train"],
    }


def figure(m: dict) -> str:
    if "accuracy" in m:
        return f"acc {m['accuracy']:.3f}"
    rouge = f", ROUGE-L {m['rouge_l']:.3f}" if "rouge_l" in m else ""
    return f"ppl {m['perplexity']:.2f}{rouge}"


def gap(fed: dict, cen: dict) -> str:
    if "accuracy" in fed:
        return f"{100 * (fed['accuracy'] - cen['accuracy']):+.1f} pt"
    return f"{100 * (fed['perplexity'] / cen['perplexity'] - 1):+.1f}% ppl"


def report(out: Path) -> None:
    saved = latest(out / "tasks.jsonl", lambda r: (r["task"], r["setting"]))
    print(
        "| task | base | federated LoRA (FedAvg) | FedAvgM, server lr m | centralised LoRA | gap FedAvg "
        "| gap FedAvgM | uplink (fed.) | time fed. / cen. |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for task in TASKS:
        fed, cen, mom = (saved.get((task, s)) for s in ("federated", "centralised", "fedavgm"))
        if not fed or not cen:
            continue
        m = f"{figure(mom['final'])} | " if mom else "- | "
        print(
            f"| {task} | {figure(fed['initial'])} | {figure(fed['final'])} | {m}{figure(cen['final'])} | "
            f"{gap(fed['final'], cen['final'])} | {gap(mom['final'], cen['final']) if mom else '-'} | "
            f"{fed['bytes_up'] / 1e6:.1f} MB | {fed['wall_seconds']:.0f} s / {cen['wall_seconds']:.0f} s |"
        )


def main() -> None:
    p = parser(__doc__, "tasks.jsonl", what="task")
    p.add_argument("--setting", choices=["federated", "centralised", "fedavgm"], help="run only this setting")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for task in chosen(args.only, list(TASKS)):
            for setting, overrides in runs(task).items():
                if args.setting and setting != args.setting:
                    continue
                run_and_append(
                    f"{task} / {setting}",
                    [*overrides, *args.overrides],
                    out,
                    "tasks.jsonl",
                    "tasks-",
                    row,
                    config=CONFIG_DIR / TASKS[task][0],
                )
    report(out)
    tradeoffs("tasks", out)
    reproduce("tasks.py")


if __name__ == "__main__":
    main()
