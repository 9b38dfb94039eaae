"""The `fedpeft` command: run, validate, datasets, methods."""

from __future__ import annotations

import argparse
import sys

from fedpeft.errors import FedPeftError


def _cmd_run(args: argparse.Namespace) -> int:
    import fedpeft

    progress = False if args.no_progress else None
    summary = fedpeft.run(args.config, args.overrides, progress=progress)
    return 0 if summary["ledger"]["failed_rounds"] < summary["rounds"] else 1


def _cmd_validate(args: argparse.Namespace) -> int:
    from fedpeft.config import dump_yaml, load_config

    cfg = load_config(args.config, args.overrides)
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

    print("PEFT methods (peft.method):")
    for name in METHODS.names():
        print(f"  {name:<10} {METHODS.get(name).family}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedpeft", description="Federated parameter-efficient fine-tuning.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a federated fine-tuning job from a YAML config")
    run.add_argument("config", help="YAML config file (e.g. configs/quickstart.yaml)")
    run.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rounds=10 clients.per_round=8")
    run.add_argument("--no-progress", action="store_true", help="no progress bars, one line per round")
    run.set_defaults(func=_cmd_run)
    val = sub.add_parser("validate", help="check a config (and overrides) without running it")
    val.add_argument("config")
    val.add_argument("overrides", nargs="*")
    val.add_argument("--show", action="store_true", help="print the resolved config with every default")
    val.set_defaults(func=_cmd_validate)
    sub.add_parser("datasets", help="list built-in datasets").set_defaults(func=_cmd_datasets)
    sub.add_parser("methods", help="list PEFT methods").set_defaults(func=_cmd_methods)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
