"""The ``peft`` section of peft_library, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class PeftLibraryMethod(MethodConfig):
    """More methods straight from the peft library (LoHa, LoKr, OFT, FourierFT, HRA, P-tuning), with
    ``options`` passed to peft's own config class (e.g. ``{r: 8, target_modules: [query, value]}``)."""

    method: Literal["loha", "lokr", "oft", "fourierft", "hra", "p_tuning"] = "loha"
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of peft's config class")
