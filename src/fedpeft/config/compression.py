"""The update pipeline's transforms, one config class each, told apart by ``name`` (a discriminated union).

The uplink carries a client's change (a delta), so every transform fits there; the downlink carries the
global state itself, so only precision transforms (fp16, bf16, int8, int4) make sense on it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from fedpeft.config.section import Section


class CastTransform(Section):
    """Send floating-point tensors as fp16 or bf16 (half the bytes of float32)."""

    name: Literal["fp16", "bf16"] = "fp16"


class QuantizeTransform(Section):
    """Unbiased quantisation to int8, int4 or int2 (ternary: -1, 0, +1) with one bf16 scale per block of
    values (``block: null`` gives one scale per tensor). ``rounding: stochastic`` rounds up with probability
    equal to the fraction; ``dithered`` adds a seeded uniform dither that the receiver subtracts again
    (subtractive dithering: the error is uniform and independent of the value, with a third of the
    worst-case variance of stochastic rounding)."""

    name: Literal["int8", "int4", "int2"] = "int8"
    block: int | None = Field(64, ge=2, description="values per scale; null = one scale per tensor")
    rounding: Literal["stochastic", "dithered"] = "stochastic"


class TopKTransform(Section):
    """Keep the largest-magnitude fraction of each tensor (values plus a bitmask or index list, whichever is
    smaller); with error feedback, what was not sent is added to the client's next update."""

    name: Literal["topk"] = "topk"
    density: float = Field(0.1, gt=0.0, le=1.0, description="fraction of each tensor's entries kept")


class RandomKTransform(Section):
    """Keep a random fraction of each tensor; the indices come from a seed in the header, so only the
    values travel. ``rescale`` multiplies by 1/density, which makes it unbiased (for use without error
    feedback)."""

    name: Literal["randk"] = "randk"
    density: float = Field(0.1, gt=0.0, le=1.0)
    rescale: bool = False


class PruneTransform(Section):
    """Magnitude pruning of the update: drop the smallest ``amount`` of each tensor's entries for good
    (top-k without error feedback)."""

    name: Literal["prune"] = "prune"
    amount: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of each tensor's entries dropped")


class LoraRankTransform(Section):
    """LoRA rank pruning: send only the ``keep`` rank components of each adapted layer whose change to
    B·A is largest (the others are sent as unchanged)."""

    name: Literal["lora_rank"] = "lora_rank"
    keep: int = Field(4, ge=1, description="rank components sent per adapted layer")


TransformConfig = Annotated[
    Union[CastTransform, QuantizeTransform, TopKTransform, RandomKTransform, PruneTransform, LoraRankTransform],
    Field(discriminator="name"),
]
PRECISION_ONLY = ("fp16", "bf16", "int8", "int4", "int2")
SPARSIFIERS = ("topk", "randk")


class CompressionConfig(Section):
    """Ordered transforms applied by the sender and undone in reverse by the receiver.

    Example:
        >>> cfg = CompressionConfig.model_validate({"uplink": [{"name": "topk", "density": 0.1}, {"name": "int8"}]})
        >>> [t.name for t in cfg.uplink], cfg.feedback
        (['topk', 'int8'], True)
    """

    uplink: list[TransformConfig] = Field(default_factory=list, description="client -> server, in order")
    downlink: list[TransformConfig] = Field(default_factory=list, description="server -> client, in order")
    error_feedback: bool | None = Field(
        None, description="keep what compression lost per client and add it to the next update; "
        "null = on when the uplink has topk or randk",
    )

    @model_validator(mode="after")
    def _downlink_precision_only(self) -> CompressionConfig:
        for t in self.downlink:
            if t.name not in PRECISION_ONLY:
                raise ValueError(
                    f"compression.downlink: {t.name} would drop parts of the global model (the downlink "
                    f"carries the state, not a change); use {', '.join(PRECISION_ONLY)} there"
                )
        for name in ("uplink", "downlink"):
            ranks = [t for t in getattr(self, name) if t.name == "lora_rank"]
            if ranks and getattr(self, name)[0].name != "lora_rank":
                raise ValueError(f"compression.{name}: lora_rank works on whole LoRA factors: put it first")
        return self

    @property
    def feedback(self) -> bool:
        if self.error_feedback is not None:
            return self.error_feedback
        return any(t.name in SPARSIFIERS for t in self.uplink)

