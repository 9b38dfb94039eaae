"""The update pipeline: ordered transforms applied by the sender, undone in reverse by the receiver.

The wire format stays safetensors, packed: parts that share a suffix and dtype (all int8 codes, all bf16
scales, ...) travel as one entry, in sorted-name order, so the header holds a handful of entries instead of
one per tensor. The header's metadata names the pipeline and the seed; a self-describing payload (the
downlink, whose receiver does not know the server's tensors) also lists the tensors' names and shapes.
A receiver that knows what it expects derives every entry's size from that and refuses any mismatch.
An empty pipeline sends plain safetensors, one entry per tensor.

Example:
    >>> from fedpeft.config.compression import CompressionConfig
    >>> cfg = CompressionConfig.model_validate({"uplink": [{"name": "topk", "density": 0.25}, {"name": "int8"}]})
    >>> pipe = UpdatePipeline.from_config(cfg.uplink, cfg.feedback)
    >>> update = {"w": torch.arange(8.0)}
    >>> payload, residual = pipe.encode(update, seed=1, residual={})
    >>> back = pipe.decode(payload, {"w": ((8,), torch.float32)})
    >>> torch.count_nonzero(back["w"]).item(), torch.allclose(back["w"] + residual["w"], update["w"])
    (2, True)
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fedpeft.errors import InvalidUpdate, reading
from fedpeft.model.state import TensorDict
from fedpeft.pipeline import codec
from fedpeft.pipeline.transforms import EncodeContext, Spec, Transform, build_transform

FORMAT = "fedpeft.packed/1"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


DTYPES = {
    dtype_name(d): d
    for d in (
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.float64,
        torch.int8,
        torch.uint8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.bool,
    )
}


class UpdatePipeline:
    """Encode tensors through ``transforms`` into one payload, and decode a payload back, checking it first.

    With ``error_feedback``, ``encode`` adds the client's residual (what earlier compression lost) to the
    update and returns the new residual: the update minus what the receiver will decode.
    """

    def __init__(self, transforms: Sequence[Transform] = (), error_feedback: bool = False) -> None:
        self.transforms = list(transforms)
        self.error_feedback = error_feedback and bool(self.transforms)

    @classmethod
    def from_config(cls, cfgs: Sequence[Any], error_feedback: bool = False) -> UpdatePipeline:
        return cls([build_transform(c) for c in cfgs], error_feedback)

    def describe(self) -> str:
        return " → ".join(t.describe() for t in self.transforms) or "none"

    def specs(self, spec: Spec) -> list[Spec]:
        """The parts' spec before each transform and after the last one."""
        chain = [dict(spec)]
        for t in self.transforms:
            chain.append(t.wire_spec(chain[-1]))
        return chain

    # -- sending --------------------------------------------------------------------------------------------
    def encode(
        self,
        tensors: TensorDict,
        *,
        seed: int = 0,
        reference: Mapping[str, torch.Tensor] | None = None,
        residual: TensorDict | None = None,
        describe: bool = False,
    ) -> tuple[bytes, TensorDict | None]:
        """(payload, new residual or None). ``describe`` lists names and shapes in the header, for receivers
        that do not know them (the downlink)."""
        if not self.transforms:
            return codec.encode(tensors), None
        if self.error_feedback and residual is not None:
            tensors = {n: t + carried(residual[n], t) if n in residual else t for n, t in tensors.items()}
        ctx = EncodeContext(seed, reference or {})
        parts = {n: tensors[n] for n in sorted(tensors)}  # by name: random draws must not depend on dict order
        for t in self.transforms:
            parts = t.encode(parts, ctx)
        meta = {"format": FORMAT, "pipeline": self.describe(), "seed": str(seed)}
        spec = {n: (tuple(t.shape), t.dtype) for n, t in tensors.items()}
        if describe:
            meta["layout"] = json.dumps(
                [[n, list(s), dtype_name(d)] for n, (s, d) in spec.items()], separators=(",", ":")
            )
        payload = codec.encode(pack(parts), meta)
        if not (self.error_feedback and residual is not None):
            return payload, None
        decoded = self.decode(payload, spec)
        return payload, {n: t.float() - decoded[n].float() for n, t in tensors.items()}

    # -- receiving ------------------------------------------------------------------------------------------
    def decode(
        self, payload: bytes, spec: Spec | None, *, max_bytes: int | None = None, sender: str = "client"
    ) -> TensorDict:
        """The tensors of ``payload``, which must match ``spec`` (or, if None, the layout in its header). A
        boundary: anything that goes wrong inside raises ``InvalidUpdate`` naming ``sender``."""
        with reading(sender):
            return self._decode(payload, spec, max_bytes, sender)

    def _decode(self, payload: bytes, spec: Spec | None, max_bytes: int | None, sender: str) -> TensorDict:
        if not self.transforms:
            return codec.decode(payload, spec, max_bytes=max_bytes, sender=sender)
        if isinstance(payload, (bytes, bytearray)) and max_bytes is not None and len(payload) > max_bytes:
            raise InvalidUpdate(f"{sender}: payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
        meta = read_metadata(payload, sender)
        if meta.get("format") != FORMAT or meta.get("pipeline") != self.describe():
            raise InvalidUpdate(
                f"{sender}: payload was encoded as {meta.get('format')!r} with pipeline {meta.get('pipeline')!r}; "
                f"this run expects {FORMAT!r} with {self.describe()!r} (check compression settings on both sides)"
            )
        try:
            seed = int(meta["seed"])
        except (KeyError, ValueError):
            raise InvalidUpdate(f"{sender}: header has no integer seed") from None
        if spec is None:
            spec = read_layout(meta, sender)
        chain = self.specs(spec)
        packed = codec.decode(payload, packed_spec(chain[-1]), sender=sender)
        parts = unpack(packed, chain[-1])
        try:
            for t, before in zip(reversed(self.transforms), reversed(chain[:-1])):
                parts = t.decode(parts, before, seed)
        except InvalidUpdate as exc:
            raise InvalidUpdate(f"{sender}: {exc}") from None
        for name, tensor in parts.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise InvalidUpdate(f"{sender}: {name} decodes to NaN or infinite values")
        return parts


def carried(residual: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The part of a residual that fits ``like``: a client whose LoRA rank shrank (self-pruning) keeps the
    residual of its leading components; one whose shapes changed otherwise starts afresh."""
    if residual.dim() == like.dim() and all(r >= s for r, s in zip(residual.shape, like.shape)):
        return residual[tuple(slice(0, s) for s in like.shape)].to(like.dtype)
    return torch.zeros_like(like)


def group_of(name: str, dtype: torch.dtype) -> str:
    """The packed entry a part travels in: its suffix chain and dtype (``#v#q:int8``; ``:float32`` for
    parts no transform touched)."""
    cut = name.find("#")
    return f"{name[cut:] if cut >= 0 else ''}:{dtype_name(dtype)}"


def pack(parts: TensorDict) -> TensorDict:
    groups: dict[str, list[torch.Tensor]] = {}
    for name in sorted(parts):
        t = parts[name]
        groups.setdefault(group_of(name, t.dtype), []).append(t.reshape(-1))
    return {g: torch.cat(ts) for g, ts in groups.items()}


def packed_spec(spec: Spec) -> Spec:
    sizes: dict[str, tuple[int, torch.dtype]] = {}
    for name in sorted(spec):
        shape, dtype = spec[name]
        g = group_of(name, dtype)
        sizes[g] = (sizes.get(g, (0, dtype))[0] + math.prod(shape), dtype)
    return {g: ((n,), d) for g, (n, d) in sizes.items()}


def unpack(packed: TensorDict, spec: Spec) -> TensorDict:
    offsets = dict.fromkeys(packed, 0)
    parts: TensorDict = {}
    for name in sorted(spec):
        shape, dtype = spec[name]
        g, n = group_of(name, dtype), math.prod(shape)
        parts[name] = packed[g][offsets[g] : offsets[g] + n].reshape(shape)
        offsets[g] += n
    return parts


def read_metadata(payload: bytes, sender: str) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header, read without touching the tensor bytes."""
    if not isinstance(payload, (bytes, bytearray)) or len(payload) < 8:
        raise InvalidUpdate(f"{sender}: payload is not a valid safetensors buffer (too short)")
    (size,) = struct.unpack("<Q", payload[:8])
    if size > len(payload) - 8:
        raise InvalidUpdate(f"{sender}: payload is not a valid safetensors buffer (header runs past the end)")
    try:
        header = json.loads(bytes(payload[8 : 8 + size]))
    except (UnicodeDecodeError, ValueError):
        raise InvalidUpdate(f"{sender}: payload is not a valid safetensors buffer (header is not JSON)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def read_layout(meta: Mapping[str, str], sender: str) -> Spec:
    try:
        rows = json.loads(meta["layout"])
        spec = {str(n): (tuple(int(x) for x in shape), DTYPES[d]) for n, shape, d in rows}
    except (KeyError, ValueError, TypeError):
        raise InvalidUpdate(f"{sender}: the header's layout is missing or malformed") from None
    if any(x < 0 for shape, _ in spec.values() for x in shape):
        raise InvalidUpdate(f"{sender}: the header's layout has a negative dimension")
    return spec
