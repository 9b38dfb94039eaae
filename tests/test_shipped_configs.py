"""Every shipped config loads, and starts with a comment giving the command that runs it."""

from pathlib import Path

import pytest

from fedpeft.config import load_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_shipped_configs() -> None:
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_is_valid_and_documents_its_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Run: fedpeft run configs/" + path.name)
    cfg = load_config(path)
    assert cfg.name == path.stem
