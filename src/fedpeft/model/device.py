"""Where the model computes and in what precision: device resolution, batches moved there, autocast.

Only the model, its trainable state and the batches live on the device; what travels (payloads, client
state, the server's global tensors) stays on the CPU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from fedpeft.errors import ConfigError

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def accelerator() -> str | None:
    """The accelerator this process can use ('cuda' or 'mps'), or None."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


def resolve_device(spec: str) -> torch.device:
    """The device a config's ``device`` names; ``auto`` picks an accelerator when there is one.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if not re.match(DEVICE_PATTERN, spec):
        raise ConfigError(f"device={spec!r}: use auto, cpu, cuda, cuda:N or mps")
    if spec == "auto":
        return torch.device(accelerator() or "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={spec}: this machine has no CUDA device torch can use; set device=auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={spec}: only {torch.cuda.device_count()} CUDA device(s) here; use cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
    if device.type == "mps" and accelerator() != "mps":
        raise ConfigError(f"device={spec}: Apple's MPS is not available here; set device=auto or cpu")
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def on_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """A batch with its tensors on ``device`` (a no-op on the CPU)."""
    if device.type == "cpu":
        return dict(batch)
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """Mixed precision for the forward pass (``precision`` bf16 or fp16); fp32 does nothing."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse what this device cannot compute in ``precision``."""
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision=bf16: {torch.cuda.get_device_name(device)} has no bfloat16; use fp16 or fp32")


HALF_STORED = (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd)


def base_dtype(setting: str, precision: str, device: torch.device, refused: bool = False) -> torch.dtype:
    """What the frozen base's matrices are stored in: ``setting`` (fp32, bf16, fp16), or for ``auto`` the
    precision's half type on an accelerator (unless ``refused``), else fp32.

    Example:
        >>> base_dtype("auto", "bf16", torch.device("cpu"))
        torch.float32
    """
    if setting != "auto":
        return DTYPES[setting]
    if precision == "fp32" or device.type == "cpu" or refused:
        return torch.float32
    return DTYPES[precision]


def store_frozen_in(model: nn.Module, dtype: torch.dtype) -> int:
    """Cast the frozen weights of the model's linear, embedding and convolution layers (and Hugging Face's
    Conv1D) to ``dtype``; trainable tensors, norms and buffers keep theirs. Returns the bytes saved.

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        >>> _ = m[0].weight.requires_grad_(False)
        >>> store_frozen_in(m, torch.bfloat16)
        32
        >>> m[0].weight.dtype, m[0].bias.dtype, m[1].weight.dtype
        (torch.bfloat16, torch.float32, torch.float32)
    """
    saved = 0
    for module in model.modules():
        if not (isinstance(module, HALF_STORED) or type(module).__name__ == "Conv1D"):
            continue
        for p in module.parameters(recurse=False):
            if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
                saved += p.numel() * (p.element_size() - torch.finfo(dtype).bits // 8)
                p.data = p.data.to(dtype)
    return saved


def is_half(model: nn.Module) -> bool:
    """Whether some frozen weight of the model is stored in bf16 or fp16 (it must then run under autocast)."""
    return any(not p.requires_grad and p.dtype in (torch.bfloat16, torch.float16) for p in model.parameters())


def describe(device: torch.device) -> str:
    """The device in words, for the run header.

    Example:
        >>> describe(torch.device("cpu")).startswith("cpu")
        True
    """
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads" + (", no accelerator found)" if accelerator() is None else ")")
    return str(device)
