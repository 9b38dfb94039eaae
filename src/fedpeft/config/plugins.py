"""Registries of plug-in config classes, one per kind of plug-in, dispatching on each section's tag.

The config layer sits below every plug-in package, so it never imports one: each registry names its
plug-in packages and imports them (by name, like entry points) on the first lookup; a plug-in's module
registers its config class when it is imported. A section is validated by the class registered under its
tag at validation time, so a plug-in registered after import (a test's toy method) is accepted too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, get_args

from pydantic import ValidatorFunctionWrapHandler, WrapValidator

from fedpeft.config.section import Section
from fedpeft.registry import Registry

S = TypeVar("S", bound=Section)


class PluginConfigs(Registry[type[S]], Generic[S]):
    """Config classes of one kind of plug-in, each registered under every value its ``tag`` field allows.

    Example:
        >>> cfg = METHOD_CONFIGS.validate({"r": 4})  # no tag: the default method's class
        >>> cfg.method, cfg.r
        ('lora', 4)
        >>> TRANSFORM_CONFIGS.tag_values(TRANSFORM_CONFIGS.get("int4"))
        ['int8', 'int4', 'int2']
    """

    def __init__(self, kind: str, *, tag: str, default: str, packages: tuple[str, ...] = ()) -> None:
        super().__init__(kind, packages)
        self.tag, self.default = tag, default

    def tag_values(self, cls: type[S]) -> list[str]:
        """The tags a config class answers to: the values of its ``Literal`` tag field."""
        field = cls.model_fields.get(self.tag)
        values = [str(v) for v in get_args(field.annotation)] if field is not None else []
        if not values:
            raise TypeError(f"{cls.__name__} needs a field {self.tag}: Literal[...] naming its {self.kind}")
        return values

    def add(self, cls: type[S]) -> type[S]:
        """Register ``cls`` under each of its tags (a class decorator)."""
        for value in self.tag_values(cls):
            self.register(value)(cls)
        return cls

    def remove(self, cls: type[S]) -> None:
        """Unregister every tag of ``cls``."""
        for value in self.tag_values(cls):
            self.unregister(value)

    @contextmanager
    def added(self, cls: type[S]) -> Iterator[type[S]]:
        """Register ``cls`` for the duration of a ``with`` block."""
        self.add(cls)
        try:
            yield cls
        finally:
            self.remove(cls)

    def class_for(self, data: Any) -> type[S]:
        """The class for a section's input (its tag, or the default when it has none); ValueError if unknown."""
        value = data.get(self.tag, self.default) if isinstance(data, dict) else getattr(data, self.tag, None)
        if not isinstance(value, str) or value not in self:
            raise ValueError(f"unknown {self.kind} {value!r}; choose one of {', '.join(self.names())} (set {self.tag})")
        return self.get(value)

    def validate(self, data: Any) -> S:
        """A registered config instance (kept as is) or the section's mapping validated by its tag's class."""
        cls = self.class_for(data)
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping with {self.tag}: <{self.kind}>, got {type(data).__name__}")
        return cls.model_validate(data)

    def create(self) -> S:
        """The default plug-in's config with every default (a section's default value)."""
        return self.get(self.default)()

    @property
    def validator(self) -> WrapValidator:
        """Field metadata that validates a section through this registry, e.g.
        ``Annotated[SerializeAsAny[MethodConfig], METHOD_CONFIGS.validator, METHOD_CONFIGS]`` (SerializeAsAny:
        dumps keep the subclass' fields; the registry itself lets config.load find it)."""
        return WrapValidator(self._wrap)

    def _wrap(self, data: Any, handler: ValidatorFunctionWrapHandler) -> S:
        return self.validate(data)


def registry_of(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> PluginConfigs[Any] | None:
    """The registry behind a field (from its metadata) or behind the items of a ``list[...]`` field."""
    for item in (*metadata, *getattr(annotation, "__metadata__", ())):
        if isinstance(item, PluginConfigs):
            return item
    args = get_args(annotation)
    return registry_of(args[0]) if len(args) == 1 else None


METHOD_CONFIGS: PluginConfigs[Any] = PluginConfigs(
    "PEFT method", tag="method", default="lora", packages=("fedpeft.methods",)
)
TRANSFORM_CONFIGS: PluginConfigs[Any] = PluginConfigs(
    "update transform", tag="name", default="fp16", packages=("fedpeft.pipeline.transforms",)
)
STRATEGY_CONFIGS: PluginConfigs[Any] = PluginConfigs(
    "strategy", tag="name", default="fedavg", packages=("fedpeft.strategy",)
)
