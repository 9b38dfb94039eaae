"""Update transforms, one file each (``pipeline/transforms/<name>.py``: its config class, registered under
its ``name`` tag, and the transform it builds), found by discovery: importing this package imports every
module here. ``base`` holds the Transform interface and shared helpers.

Example:
    >>> from fedpeft.config.compression import CompressionConfig
    >>> cfg = CompressionConfig.model_validate({"uplink": [{"name": "int8", "block": 4}]})
    >>> build_transform(cfg.uplink[0]).describe()
    'int8(block=4)'
"""

from __future__ import annotations

import importlib
import pkgutil

from fedpeft.config.compression import TransformConfig
from fedpeft.config.plugins import TRANSFORM_CONFIGS
from fedpeft.pipeline.transforms.base import EncodeContext, PerTensor, Shape, Spec, Transform, index_spec, kept

for _info in pkgutil.iter_modules(__path__):  # sorted by name, so registration order is stable
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

TRANSFORMS = TRANSFORM_CONFIGS  # one registry per kind of plug-in: a transform's config class builds it


def build_transform(cfg: TransformConfig) -> Transform:
    """The transform a validated ``compression.uplink`` / ``downlink`` entry describes."""
    built = cfg.build()
    if not isinstance(built, Transform):
        raise TypeError(f"{type(cfg).__name__}.build() must return a Transform, not {type(built).__name__}")
    return built


__all__ = [
    "TRANSFORMS",
    "EncodeContext",
    "PerTensor",
    "Shape",
    "Spec",
    "Transform",
    "build_transform",
    "index_spec",
    "kept",
]
