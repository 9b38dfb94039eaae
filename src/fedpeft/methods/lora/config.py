"""The ``peft`` section of lora, registered under its ``method`` tag."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS


@METHOD_CONFIGS.add
class LoraMethod(MethodConfig):
    """Low-rank adaptation through the peft library (rsLoRA and DoRA are flags of it)."""

    method: Literal["lora"] = "lora"
    r: int = Field(8, ge=1)
    alpha: int = Field(
        16,
        ge=1,
        validation_alias=AliasChoices("alpha", "lora_alpha"),  # peft's LoraConfig names are accepted too
        description="LoRA scaling numerator (scale = alpha / r); peft's lora_alpha is accepted",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, validation_alias=AliasChoices("dropout", "lora_dropout"))
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None, description="module names to adapt; None picks peft's default for the architecture"
    )
    layers: list[int] | None = Field(
        None, description="adapt only these body blocks (0 = the lowest); None adapts every block"
    )
    use_rslora: bool = False
    use_dora: bool = False
