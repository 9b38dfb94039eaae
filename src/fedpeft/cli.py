"""The `fedpeft` command: run, validate, datasets, methods, strategies, transforms, flower."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Literal

from fedpeft.errors import FedPeftError


def _cmd_run(args: argparse.Namespace) -> int:
    import fedpeft

    progress: bool | Literal["lines"] | None = False if args.quiet else "lines" if args.no_progress else None
    if args.resume is not None:
        overrides = [args.config, *args.overrides] if args.config else args.overrides
        summary = fedpeft.resume(args.resume, overrides, progress=progress)
    elif args.config is None:
        raise SystemExit("fedpeft run: give a config (e.g. configs/quickstart.yaml) or --resume runs/<name>")
    else:
        summary = fedpeft.run(args.config, args.overrides, progress=progress)
    return 0 if summary["ledger"]["failed_rounds"] < summary["rounds"] else 1


def _cmd_predict(args: argparse.Namespace) -> int:
    import fedpeft

    run = fedpeft.load(args.run_dir)
    for row in run.predict(args.texts):
        if "answer" in row:
            print(f"{row['text']}\n  -> {row['answer']}")
        else:
            print(f"{row['label']}\t{row['probability']:.3f}\t{row['text']}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fedpeft.report.compare import collect, plot, table

    entries = collect(args.runs)
    print(table(entries))
    if not args.no_plot:
        print(f"plots: {plot(entries, Path(args.out), args.metric)}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from fedpeft.config import dump_yaml, load_config
    from fedpeft.config.names import check_names

    cfg = load_config(args.config, args.overrides)
    check_names(cfg)  # the model and the data can be found here (local, packaged, cached or on a reachable hub)
    print(f"{args.config}: valid")
    if args.show:
        print(dump_yaml(cfg), end="")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from fedpeft.data.sources import DATASETS, DESCRIPTIONS

    print("built-in datasets (data.dataset):")
    for name in DATASETS.names():
        print(f"  {name:<18} {DESCRIPTIONS.get(name, '')}")
    print("your own data: data.dataset = csv | jsonl | parquet (with data.path) or hf (with data.hf_id);")
    print("  name the columns with data.text_column, data.label_column and optionally data.client_column")
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from fedpeft.methods import METHODS
    from fedpeft.report.method_costs import default_config, first_sentence

    if args.config is None and args.model is None:
        print("PEFT methods (peft.method):")
        for name in METHODS.names():
            spec = METHODS.get(name)
            summary = spec.summary or first_sentence(type(default_config(name)).__doc__)
            print(f"  {name:<11} {spec.family:<16} {summary}")
        print(
            "trainable parameters and bytes per round on a model: fedpeft methods --model minilm "
            "(or a config file: fedpeft methods configs/quickstart.yaml)"
        )
        return 0
    return _method_costs(args)


NOTES = (  # capability flags worth a word in `fedpeft strategies`
    ("single_updates", "needs single updates"),
    ("extra_state", "sends strategy state"),
    ("client_half", "client half"),
)


def _cmd_strategies(args: argparse.Namespace) -> int:
    from fedpeft.report.method_costs import first_sentence
    from fedpeft.strategy import STRATEGIES

    print("Server strategies (strategy.name):")
    for name in STRATEGIES.names():
        spec = STRATEGIES.get(name)
        kind = "LoRA-aware" if spec.config.lora_only else "general"
        ranks = "mixed ranks" if spec.config.mixed_ranks else "one rank"
        flags = spec.config.flags()
        notes = [words for flag, words in NOTES if flags[flag]]
        extra = f" [{'; '.join(notes)}]" if notes else ""
        print(f"  {name:<11} {kind:<11} {ranks:<12} {first_sentence(spec.config.__doc__)}{extra}")
    print("mixed LoRA ranks: resources.rank_tiers={4: 0.3, 8: 0.5, 16: 0.2} with peft.r: 16")
    return 0


def _cmd_transforms(args: argparse.Namespace) -> int:
    from fedpeft.pipeline.transforms import TRANSFORMS
    from fedpeft.report.method_costs import first_sentence

    print("Update transforms (compression.uplink / compression.downlink, applied in order):")
    for name in TRANSFORMS.names():
        cls = TRANSFORMS.get(name)
        fields = ", ".join(f"{f}={v.default}" for f, v in cls.model_fields.items() if f != "name")
        where = "up, down" if cls.downlink else "up"
        print(f"  {name:<10} {where:<9} {fields:<27} {first_sentence(cls.__doc__)}")
    print(
        "example: compression.uplink=[{name: topk, density: 0.1}, {name: int8}]; error feedback is on by "
        "default with topk / randk (compression.error_feedback)"
    )
    return 0


def _method_costs(args: argparse.Namespace) -> int:
    from fedpeft.config import load_config
    from fedpeft.config.names import infer_task
    from fedpeft.model.load import load_model
    from fedpeft.report.method_costs import cost_table, method_costs

    cfg = load_config(args.config or {}, [*args.overrides, *([f"model.name={args.model}"] if args.model else [])])
    task = infer_task(cfg.model.name)
    labels = [str(i) for i in range(args.labels)]
    if task == "sequence_classification" and args.config is not None:
        from fedpeft.data import load_dataset

        labels = load_dataset(cfg.data).label_names
    base, _ = load_model(
        cfg.model.name,
        task,
        labels,
        seed=cfg.seed,
        pooling=cfg.model.pooling,
        trust_remote_code=cfg.model.trust_remote_code,
        num_layers=cfg.model.num_layers,
    )
    print(f"{cfg.model.name} ({task}, {len(labels)} labels):" if task != "causal_lm" else f"{cfg.model.name} ({task}):")
    costs = method_costs(base, task, cfg.peft if args.config else None)
    print(cost_table(costs, cfg.clients.per_round))
    return 0


def _cmd_flower_local(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fedpeft.config import load_config
    from fedpeft.runtime.flower.federation import LocalFederation

    cfg = load_config(args.config, args.overrides)  # a bad config fails here, before anything starts
    folder = Path(args.folder or Path(cfg.output.dir) / f"{cfg.name}-flower").resolve()
    overrides = [*args.overrides, f"output.dir={Path(cfg.output.dir).resolve()}"]
    secure = "insecure (no TLS, no node authentication)" if args.insecure else "TLS and SuperNode authentication"
    print(f"fedpeft: starting a SuperLink and {args.nodes} SuperNodes on 127.0.0.1 with {secure}; logs in {folder}/")
    with LocalFederation(folder, nodes=args.nodes, secure=not args.insecure) as fed:
        result = fed.run(Path(args.config), overrides, timeout=args.timeout, echo=True)
    print(
        f"fedpeft: Flower run {result.run_id}: {result.status}"
        + (f"; results in {result.run_dir}/" if result.run_dir else "")
    )
    return 0 if result.ok else 1


def _cmd_flower_certs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fedpeft.runtime.flower.certs import make_credentials

    creds = make_credentials(Path(args.folder), args.nodes, args.host or None, days=args.days, force=args.force)
    print(f"CA certificate:      {creds.ca_cert}   (to the SuperNodes and to flwr's connection)")
    hosts = ", ".join(args.host or ["127.0.0.1", "localhost"])
    print(f"SuperLink TLS:       {creds.server_cert}, {creds.server_key}   (for {hosts})")
    for i, (private, public) in enumerate(creds.node_keys):
        print(f"SuperNode {i} keys:    {private} (stays on node {i}), {public} (flwr supernode register)")
    return 0


def _cmd_flower_app(args: argparse.Namespace) -> int:
    from fedpeft.runtime.flower.federation import APP

    print(APP)
    return 0


def _verbosity(parser: argparse.ArgumentParser, default: object = 0) -> None:
    """-q / -v, on the main command and on each subcommand (``fedpeft -v run ...`` or ``fedpeft run ... -v``)."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default or False, help="print only warnings and errors"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=default, help="log what fedpeft does (-vv: in detail)"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fedpeft")
    except PackageNotFoundError:
        from fedpeft import __version__

        return __version__


def _flower_parsers(sub: Any) -> tuple[argparse.ArgumentParser, Any]:
    """`fedpeft flower local | certs | app`."""
    flower = sub.add_parser("flower", help="run on Flower: a local federation, credentials, the app bundle")
    fsub = flower.add_subparsers(dest="flower_command", required=True)
    local = fsub.add_parser("local", help="a SuperLink and N SuperNodes on loopback running a config")
    local.add_argument("config")
    local.add_argument("overrides", nargs="*")
    local.add_argument("--nodes", type=int, default=2, help="SuperNodes, each holding one data partition")
    local.add_argument("--insecure", action="store_true", help="no TLS and no SuperNode authentication")
    local.add_argument("--folder", help="for certificates, logs and Flower's home (default runs/<name>-flower)")
    local.add_argument("--timeout", type=float, default=3600.0, help="seconds before the run is stopped")
    local.set_defaults(func=_cmd_flower_local)
    certs = fsub.add_parser("certs", help="a CA, the SuperLink's TLS certificate and SuperNode key pairs")
    certs.add_argument("folder")
    certs.add_argument("--nodes", type=int, default=2)
    certs.add_argument("--host", action="append", help="an address the SuperLink is reached at (repeatable)")
    certs.add_argument("--days", type=int, default=365)
    certs.add_argument("--force", action="store_true", help="replace credentials already in the folder")
    certs.set_defaults(func=_cmd_flower_certs)
    fsub.add_parser("app", help="print the folder of fedpeft's Flower app (for flwr run)").set_defaults(
        func=_cmd_flower_app
    )
    return flower, fsub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedpeft", description="Federated parameter-efficient fine-tuning.")
    parser.add_argument("--version", action="version", version=f"fedpeft {_version()}")
    _verbosity(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a federated fine-tuning job from a YAML config")
    run.add_argument("config", nargs="?", help="YAML config file (e.g. configs/quickstart.yaml)")
    run.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rounds=10 clients.per_round=8")
    run.add_argument("--no-progress", action="store_true", help="no progress bars, one line per round")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="go on with a stopped run (runs/<name>) from its last completed round, with its saved config",
    )
    run.set_defaults(func=_cmd_run)
    pred = sub.add_parser("predict", help="a finished run's predictions for texts: label and probability, or answer")
    pred.add_argument("run_dir", help="the run's folder, e.g. runs/quickstart")
    pred.add_argument("texts", nargs="+", help="texts to classify (or questions, for a language model)")
    pred.set_defaults(func=_cmd_predict)
    cmp = sub.add_parser("compare", help="runs side by side: quality against bytes, epsilon, time; trade-off plots")
    cmp.add_argument("runs", nargs="+", help="run folders, folders of runs, results .jsonl files, or globs")
    cmp.add_argument("--out", default="compare.png", help="where to draw the trade-off plots")
    cmp.add_argument("--metric", help="plot the runs measured in this metric (default: the most common)")
    cmp.add_argument("--no-plot", action="store_true", help="only print the table")
    cmp.set_defaults(func=_cmd_compare)
    val = sub.add_parser("validate", help="check a config (and overrides) without running it")
    val.add_argument("config")
    val.add_argument("overrides", nargs="*")
    val.add_argument("--show", action="store_true", help="print the resolved config with every default")
    val.set_defaults(func=_cmd_validate)
    sub.add_parser("datasets", help="list built-in datasets").set_defaults(func=_cmd_datasets)
    sub.add_parser("strategies", help="list server strategies").set_defaults(func=_cmd_strategies)
    sub.add_parser("transforms", help="list update transforms (compression)").set_defaults(func=_cmd_transforms)
    met = sub.add_parser("methods", help="list PEFT methods; with a model or config, what each costs on it")
    met.add_argument("config", nargs="?", help="a run config: its model, method settings and clients per round")
    met.add_argument("overrides", nargs="*")
    met.add_argument("--model", help="a model alias, id or folder (e.g. minilm, smollm2, mobilenet_v2)")
    met.add_argument("--labels", type=int, default=2, help="classes of the new head when no config gives data")
    met.set_defaults(func=_cmd_methods)
    flower, fsub = _flower_parsers(sub)
    for command in [*sub.choices.values(), *fsub.choices.values()]:
        if command is not flower:
            _verbosity(command, argparse.SUPPRESS)
    return parser


def _logging(verbose: int, quiet: bool) -> None:
    """fedpeft's log on stderr: warnings and errors by default and with -q, more with -v and -vv."""
    import logging

    level = logging.WARNING if quiet or not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    log = logging.getLogger("fedpeft")
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("fedpeft %(levelname)s: %(message)s"))
        log.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides after an option (`run cfg.yaml --no-progress rounds=3`) are still overrides
        if not hasattr(args, "overrides") or any(a.startswith("-") or "=" not in a for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    _logging(args.verbose, args.quiet)
    try:
        return int(args.func(args))
    except FedPeftError as exc:
        print(f"fedpeft: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedpeft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
