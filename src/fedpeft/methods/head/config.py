"""The ``peft`` section of head, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class HeadMethod(MethodConfig):
    """Head-only (linear probe): only the new task head trains."""

    method: Literal["head"] = "head"
