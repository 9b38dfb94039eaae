"""Payloads on the wire: safetensors bytes, decoded only against the expected names, shapes and dtypes.

safetensors holds raw tensor bytes and a JSON header, so decoding executes nothing (no pickle).
"""

from __future__ import annotations

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from fedpeft.errors import InvalidUpdate, reading
from fedpeft.model.state import TensorDict

Spec = dict[str, tuple[tuple[int, ...], torch.dtype]]


def encode(tensors: TensorDict, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise tensors to safetensors bytes.

    Example:
        >>> len(encode({"w": torch.zeros(2, 2)})) > 16
        True
    """
    return st_save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


def decode(payload: bytes, spec: Spec | None, *, max_bytes: int | None = None, sender: str = "client") -> TensorDict:
    """Parse and validate a payload; raise InvalidUpdate naming the sender and the problem (for anything that
    goes wrong inside: this is a boundary).

    ``spec`` gives the expected names, shapes and dtypes; ``None`` checks only the format and finiteness.

    Example:
        >>> spec = {"w": ((2,), torch.float32)}
        >>> decode(encode({"w": torch.ones(2)}), spec)["w"].tolist()
        [1.0, 1.0]
    """
    with reading(sender):
        return _decode(payload, spec, max_bytes, sender)


def _decode(payload: bytes, spec: Spec | None, max_bytes: int | None, sender: str) -> TensorDict:
    if not isinstance(payload, (bytes, bytearray)):
        raise InvalidUpdate(f"{sender}: payload is {type(payload).__name__}, expected bytes")
    if max_bytes is not None and len(payload) > max_bytes:
        raise InvalidUpdate(f"{sender}: payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        tensors = dict(sorted(st_load(bytes(payload)).items()))  # by name: safetensors' own order varies by process
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InvalidUpdate(f"{sender}: payload is not a valid safetensors buffer ({exc})") from None
    if spec is None:
        spec = {k: (tuple(t.shape), t.dtype) for k, t in tensors.items()}
    missing, extra = sorted(set(spec) - set(tensors)), sorted(set(tensors) - set(spec))
    if missing or extra:
        raise InvalidUpdate(f"{sender}: wrong keys (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, (shape, dtype) in spec.items():
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise InvalidUpdate(f"{sender}: {name} has shape {tuple(t.shape)}, expected {shape}")
        if t.dtype != dtype:
            raise InvalidUpdate(f"{sender}: {name} has dtype {t.dtype}, expected {dtype}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise InvalidUpdate(f"{sender}: {name} contains NaN or infinite values")
    return tensors
