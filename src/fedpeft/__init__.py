"""fedpeft: federated parameter-efficient fine-tuning of foundation models."""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from fedpeft.config import RunConfig, load_config

__version__ = "0.1.0"
__all__ = ["RunConfig", "__version__", "load", "load_config", "resume", "run"]


def run(
    config: str | Path | Mapping[str, Any] | RunConfig | None = None,
    overrides: Iterable[str] = (),
    *,
    progress: bool | Literal["lines"] | None = None,
    model: Any = None,
    tokenizer: Any = None,
    data: Any = None,
    peft_config: Any = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Run a federated fine-tuning job and return its summary dict. ``progress``: True shows progress bars,
    "lines" one line per round, False nothing, None (the default) bars on a terminal and lines elsewhere.

    Example:
        >>> import fedpeft
        >>> summary = fedpeft.run("configs/quickstart.yaml", ["rounds=2"])  # doctest: +SKIP
        >>> summary["final"]["accuracy"]  # doctest: +SKIP

    Your own objects go in place of names in the config: ``model`` and ``tokenizer`` (a transformers model,
    e.g. ``AutoModelForSequenceClassification``, adapted in place), ``data`` (a pandas DataFrame or a
    ``datasets.Dataset``, read with ``data.text_column`` / ``label_column`` / ``client_column``),
    ``peft_config`` (a ``peft.LoraConfig`` or another peft config), and ``callbacks`` (functions called with
    each round's record, or objects with ``on_round_end(record)``, ``on_evaluate(round, metrics)``,
    ``on_run_end(summary)``).

        >>> fedpeft.run({"rounds": 3}, model=my_model, tokenizer=my_tokenizer, data=frame,
        ...             peft_config=LoraConfig(r=4, lora_alpha=8), callbacks=[print])  # doctest: +SKIP
    """
    from fedpeft.config.load import raw_config, validate
    from fedpeft.config.names import check_raw_names

    raw = raw_config(config, overrides)
    check_raw_names(raw, model is not None, data is not None)  # within a second, before validation's imports
    cfg = validate(raw)
    changes: dict[str, Any] = {}
    if peft_config is not None:
        from fedpeft.methods.from_peft import section

        changes["peft"] = section(peft_config)
    if model is not None:
        name = str(getattr(model, "name_or_path", "") or getattr(getattr(model, "config", None), "_name_or_path", ""))
        changes["model"] = {**cfg.model.model_dump(mode="json"), "name": name or type(model).__name__}
    if data is not None:  # named for the records; the examples come from the object
        changes["data"] = {**cfg.data.model_dump(mode="json"), "dataset": f"python:{type(data).__name__}"}
        changes["data"].update(path=None, hf_id=None)
    if changes:
        cfg = load_config({**cfg.model_dump(mode="json"), **changes})
    from fedpeft.build.workload import Provided
    from fedpeft.recipe import run_experiment

    examples = None
    if data is not None:
        from fedpeft.data.sources import examples_from

        examples = examples_from(data, cfg.data)
    provided = Provided(model, tokenizer, examples)
    return run_experiment(cfg, progress=progress, provided=provided, callbacks=callbacks)


def resume(
    run_dir: str | Path, overrides: Iterable[str] = (), *, progress: bool | Literal["lines"] | None = None
) -> dict[str, Any]:
    """Go on with a run that stopped (killed, crashed) from its last completed round, with the config saved in
    its folder; the results equal an uninterrupted run's. Only ``threads=`` may be overridden.

    Example:
        >>> summary = fedpeft.resume("runs/quickstart")  # doctest: +SKIP
    """
    from fedpeft.errors import ConfigError
    from fedpeft.recipe import run_experiment

    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"{folder}: no config.yaml, so not a fedpeft run folder (runs/<name>/)")
    changed = [o for o in overrides if not o.startswith("threads=")]
    if changed:
        raise ConfigError(f"--resume keeps the run's own config; only threads= may change, not {', '.join(changed)}")
    return run_experiment(load_config(folder / "config.yaml", overrides), progress=progress, resume=folder)


def load(run_dir: str | Path) -> Any:
    """A finished run's trained model (its base with the saved adapter, in eval mode), tokenizer and label
    names; unpacks as ``model, tokenizer, labels`` and has ``.predict(texts)``.

    Example:
        >>> model, tokenizer, labels = fedpeft.load("runs/quickstart")  # doctest: +SKIP
        >>> fedpeft.load("runs/quickstart").predict(["a gripping, funny film"])[0]["label"]  # doctest: +SKIP
        'fresh'
    """
    from fedpeft.recipe.loaded import load_run

    return load_run(run_dir)
