"""fedpeft: federated parameter-efficient fine-tuning of foundation models."""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fedpeft.config import RunConfig, load_config

__version__ = "0.1.0"
__all__ = ["RunConfig", "__version__", "load_config", "run"]


def run(
    config: str | Path | Mapping[str, Any] | RunConfig | None = None,
    overrides: Iterable[str] = (),
    *,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run a federated fine-tuning job and return its summary dict.

    Example:
        >>> import fedpeft
        >>> summary = fedpeft.run("configs/quickstart.yaml", ["rounds=2"])  # doctest: +SKIP
        >>> summary["final"]["accuracy"]  # doctest: +SKIP
    """
    from fedpeft.experiment import run_experiment

    return run_experiment(load_config(config, overrides), progress=progress)
