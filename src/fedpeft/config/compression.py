"""Compression settings: ordered update transforms for each direction (``compression.uplink`` / ``downlink``).

Each transform's config class lives beside its code in ``fedpeft/pipeline/transforms/<name>.py`` and is
registered under its ``name`` tag. The uplink carries a client's change (a delta), so every transform fits
there; the downlink carries the global state itself, so only transforms flagged ``downlink`` (precision:
fp16, bf16, int8, int4, int2) may run on it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Protocol

from pydantic import Field, SerializeAsAny, model_validator

from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.config.section import Section


class BuiltTransform(Protocol):
    """What the config layer reads of a built transform: whether it wants error feedback by default."""

    @property
    def feedback(self) -> bool: ...


class TransformConfig(Section):
    """Settings of one update transform; a subclass names it in ``name: Literal[...]``, sets its flags, builds
    the transform and is registered with ``TRANSFORM_CONFIGS.add``.

    Flags: ``downlink``: safe on the downlink (it keeps every entry of the state, only at lower precision).

    Example:
        >>> from typing import Literal
        >>> class NoOp(TransformConfig):
        ...     name: Literal["noop"] = "noop"
        >>> NoOp().name, NoOp.downlink
        ('noop', False)
    """

    name: str
    downlink: ClassVar[bool] = False

    def build(self) -> BuiltTransform:
        """The transform these settings describe (a ``fedpeft.pipeline.transforms.Transform``)."""
        raise NotImplementedError(f"{type(self).__name__} does not build a transform")


TransformSection = Annotated[SerializeAsAny[TransformConfig], TRANSFORM_CONFIGS.validator, TRANSFORM_CONFIGS]


class CompressionConfig(Section):
    """Ordered transforms applied by the sender and undone in reverse by the receiver.

    Example:
        >>> cfg = CompressionConfig.model_validate({"uplink": [{"name": "topk", "density": 0.1}, {"name": "int8"}]})
        >>> [t.name for t in cfg.uplink], cfg.feedback
        (['topk', 'int8'], True)
    """

    uplink: list[TransformSection] = Field(default_factory=list, description="client -> server, in order")
    downlink: list[TransformSection] = Field(default_factory=list, description="server -> client, in order")
    error_feedback: bool | None = Field(
        None,
        description="keep what compression lost per client and add it to the next update; "
        "null = on when an uplink transform wants it (topk, randk)",
    )

    @model_validator(mode="after")
    def _downlink_precision_only(self) -> CompressionConfig:
        for t in self.downlink:
            if not t.downlink:
                allowed = [n for n in TRANSFORM_CONFIGS.in_order() if TRANSFORM_CONFIGS.get(n).downlink]
                raise ValueError(
                    f"compression.downlink: {t.name} would drop parts of the global model (the downlink "
                    f"carries the state, not a change); use {', '.join(allowed)} there"
                )
        for name in ("uplink", "downlink"):
            ranks = [t for t in getattr(self, name) if t.name == "lora_rank"]
            if ranks and getattr(self, name)[0].name != "lora_rank":
                raise ValueError(f"compression.{name}: lora_rank works on whole LoRA factors: put it first")
        return self

    @property
    def feedback(self) -> bool:
        """Error feedback: as set, or on when any uplink transform's ``feedback`` flag asks for it."""
        if self.error_feedback is not None:
            return self.error_feedback
        return any(t.build().feedback for t in self.uplink)
