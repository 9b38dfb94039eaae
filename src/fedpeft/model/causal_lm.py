"""Decoder language models: any Hugging Face causal LM, and GGUF files converted once to a cached folder.

The packaged SmolLM2-135M-Instruct ships as a 4-bit GGUF file. transformers dequantises it in about 40 s,
so the first load writes a safetensors folder under the user's cache (``FEDPEFT_CACHE``, default
``~/.cache/fedpeft``) and every later load reads that in under a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import torch
from torch import nn

from fedpeft.errors import ModelError


def cache_root() -> Path:
    return Path(os.environ.get("FEDPEFT_CACHE", Path.home() / ".cache" / "fedpeft"))


def gguf_cache_dir(gguf_file: Path) -> Path:
    stat = gguf_file.stat()
    key = hashlib.sha256(f"{gguf_file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{gguf_file.stem}-{key}"


def convert_gguf(gguf_file: Path) -> Path:
    """Dequantise a GGUF file to a cached safetensors folder (model + tokenizer); return the folder.

    The folder is written beside its final place and renamed into it, so an interrupted conversion
    never leaves a half-written cache behind.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = gguf_cache_dir(gguf_file)
    if (target / "config.json").is_file():
        return target
    print(f"fedpeft: converting {gguf_file.name} to safetensors once (about 40 s) -> {target}", file=sys.stderr)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        kwargs = {"gguf_file": gguf_file.name}
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), **kwargs)
    except (ImportError, OSError, ValueError) as exc:
        raise ModelError(f"could not read {gguf_file}: {exc} (GGUF loading needs the `gguf` package)") from None
    # the weights are dequantised float32 now; save_pretrained refuses while the GGUF markers remain
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "hf_quantizer", None)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if target.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(target)
    return target


def load_causal_lm(source: str, *, num_layers: int | None = None) -> tuple[nn.Module, object]:
    """Return (model, tokenizer) for a causal LM folder, hub id or ``.gguf`` file, optionally cut to its
    first ``num_layers`` decoder blocks for quick runs.

    Example:
        >>> model, tok = load_causal_lm("smollm2", num_layers=4)  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {source} does not exist")
        source = str(convert_gguf(path))
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load causal LM {source!r}: {exc}") from None
    if num_layers is not None:
        truncate_layers(model, num_layers)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def truncate_layers(model: nn.Module, num_layers: int) -> None:
    """Keep the first ``num_layers`` decoder blocks (the final norm and head stay)."""
    from fedpeft.model.anatomy import body_blocks

    container, blocks = body_blocks(model)
    if not 1 <= num_layers <= len(blocks):
        raise ModelError(f"model.num_layers={num_layers}: this model has {len(blocks)} layers; pick 1..{len(blocks)}")
    parent = model.get_submodule(container.rsplit(".", 1)[0]) if "." in container else model
    setattr(parent, container.rsplit(".", 1)[-1], nn.ModuleList(list(blocks)[:num_layers]))
    config = getattr(model, "config", None)
    if config is not None:
        config.num_hidden_layers = num_layers
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:num_layers]
