"""Whether a Hugging Face hub name can load here, answered before anything downloads: a name in the local
cache loads; one that is not, while the hub is offline (``HF_HUB_OFFLINE``) or unreachable, fails at once
instead of after half a minute of the hub client's retries.

Example:
    >>> check_hub_name("minilm", "model", "model.name", "an alias")  # doctest: +SKIP
    Traceback (most recent call last):
    fedpeft.errors.DataError: model.name='minilm' is not a local path and is not in the Hugging Face cache, and
    HF_HUB_OFFLINE is set; use an alias, or download it where the hub is reachable
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from fedpeft.errors import DataError, FedPeftError

RepoType = Literal["model", "dataset"]


def offline_by_setting() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@functools.cache
def hub_reachable(timeout: float = 1.0) -> bool:
    """Whether the hub's host answers a TCP connection within ``timeout`` seconds (asked once per process)."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_offline() -> bool:
    """The hub cannot be asked: ``HF_HUB_OFFLINE`` is set, or its host does not answer."""
    return offline_by_setting() or not hub_reachable()


def in_cache(repo_id: str, repo_type: RepoType) -> bool:
    """Whether the hub cache holds a snapshot of ``repo_id`` (the library's own cache layout)."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    return any((folder / "snapshots").glob("*/*"))


def check_hub_name(
    name: str, repo_type: RepoType, key: str, alternatives: str, error: type[FedPeftError] = DataError
) -> None:
    """Pass when ``name`` is a local path, is cached, or the hub can be asked for it; else ``error``, one
    line naming the setting, why, and the ``alternatives`` (what else the setting accepts)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(name).expanduser().exists():
        return
    if name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1:
        raise error(f"{key}={name!r}: no such file or folder; use {alternatives}")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise error(
            f"{key}={name!r} is not a local path, and not a valid Hugging Face id (owner/name); use {alternatives}"
        ) from None
    if in_cache(name, repo_type) or not hub_offline():
        return
    why = "HF_HUB_OFFLINE is set" if offline_by_setting() else "the hub is unreachable from here"
    raise error(
        f"{key}={name!r} is not a local path and is not in the Hugging Face cache, and {why}; "
        f"use {alternatives}, or download it where the hub is reachable"
    )
