"""The base of every PEFT method's config, and the ``peft`` section's type: the class registered under its
``method`` tag validates it (each method's config class lives in its folder, ``fedpeft/methods/<name>/``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import SerializeAsAny

from fedpeft.config.plugins import METHOD_CONFIGS
from fedpeft.config.section import Section


class MethodConfig(Section):
    """Settings of one PEFT method; a subclass names its method(s) in ``method: Literal[...]`` and is
    registered with ``METHOD_CONFIGS.add``.

    Example:
        >>> from typing import Literal
        >>> class GateMethod(MethodConfig):
        ...     method: Literal["gate"] = "gate"
        >>> GateMethod().method
        'gate'
    """

    method: str


PeftMethodConfig = Annotated[SerializeAsAny[MethodConfig], METHOD_CONFIGS.validator, METHOD_CONFIGS]
