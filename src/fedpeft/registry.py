"""One small registry class; each kind of plug-in (datasets, partitioners, methods, strategies) owns one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a plug-in, refusing duplicates and naming the choices on a miss.

    Example:
        >>> strategies: Registry[type] = Registry("strategy")
        >>> @strategies.register("fedavg")
        ... class FedAvg: ...
        >>> strategies.get("fedavg").__name__
        'FedAvg'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if not name or name != name.strip().lower():
            raise ValueError(f"{self.kind} name {name!r} must be lower-case with no surrounding spaces")

        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; available: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
