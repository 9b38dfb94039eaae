"""fedpeft: federated parameter-efficient fine-tuning of foundation models."""

from collections.abc import Iterable, Mapping
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
) -> dict[str, Any]:
    """Run a federated fine-tuning job and return its summary dict. ``progress``: True shows progress bars,
    "lines" one line per round, False nothing, None (the default) bars on a terminal and lines elsewhere.

    Example:
        >>> import fedpeft
        >>> summary = fedpeft.run("configs/quickstart.yaml", ["rounds=2"])  # doctest: +SKIP
        >>> summary["final"]["accuracy"]  # doctest: +SKIP
    """
    from fedpeft.recipe import run_experiment

    return run_experiment(load_config(config, overrides), progress=progress)


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
