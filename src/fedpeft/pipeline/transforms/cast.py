"""Cast to fp16 or bf16 on the wire: half the bytes of float32, safe on the downlink."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from fedpeft.config.compression import TransformConfig
from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.model.state import TensorDict
from fedpeft.pipeline.transforms.base import EncodeContext, PerTensor, Shape, Spec


@TRANSFORM_CONFIGS.add
class CastTransform(TransformConfig):
    """Send floating-point tensors as fp16 or bf16 (half the bytes of float32).

    Example:
        >>> CastTransform(name="bf16").build().describe()
        'bf16'
    """

    name: Literal["fp16", "bf16"] = "fp16"
    downlink: ClassVar[bool] = True

    def build(self) -> Cast:
        return Cast(torch.float16 if self.name == "fp16" else torch.bfloat16)


class Cast(PerTensor):
    """fp16 or bf16 on the wire (fp16 saturates at +-65504 instead of overflowing)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def describe(self) -> str:
        return "fp16" if self.dtype == torch.float16 else "bf16"

    def part_spec(self, shape: Shape, dtype: torch.dtype) -> Spec:
        return {"h": (shape, self.dtype)}

    def encode_one(self, name: str, x: torch.Tensor, ctx: EncodeContext) -> TensorDict:
        limit = torch.finfo(self.dtype).max
        return {"h": x.float().clamp(-limit, limit).to(self.dtype)}

    def decode_one(self, name: str, sub: TensorDict, shape: Shape, seed: int) -> torch.Tensor:
        return sub["h"].float()
