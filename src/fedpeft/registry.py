"""One small registry class; each kind of plug-in (datasets, partitioners, methods, strategies) owns one."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a plug-in, refusing duplicates and naming the choices on a miss.

    ``packages`` are imported (by name, like entry points) on the first lookup, so that plug-ins that
    register themselves when imported are found without anyone importing them first.

    Example:
        >>> strategies: Registry[type] = Registry("strategy")
        >>> @strategies.register("fedavg")
        ... class FedAvg: ...
        >>> strategies.get("fedavg").__name__
        'FedAvg'
        >>> strategies.unregister("fedavg"); "fedavg" in strategies
        False
    """

    def __init__(self, kind: str, packages: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.packages = packages
        self._items: dict[str, T] = {}
        self._discovered = not packages

    def register(self, name: str) -> Callable[[T], T]:
        if not name or name != name.strip().lower():
            raise ValueError(f"{self.kind} name {name!r} must be lower-case with no surrounding spaces")

        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return decorator

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests that register a toy plug-in clean up with this)."""
        self.get(name)
        del self._items[name]

    def discover(self) -> None:
        """Import the plug-in packages once; each registers its plug-ins as it is imported."""
        if self._discovered:
            return
        self._discovered = True  # before importing: a plug-in may look itself up while it loads
        for package in self.packages:
            importlib.import_module(package)

    def get(self, name: str) -> T:
        self.discover()
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; available: {', '.join(sorted(self._items))}") from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """The names in the order they were registered (discovery imports plug-ins in sorted file order)."""
        self.discover()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
