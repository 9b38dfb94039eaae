"""Exceptions that carry a message meant for the user: what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class FedPeftError(Exception):
    """Base class for errors reported to the user without a traceback."""


class ConfigError(FedPeftError):
    """A config file or override is invalid."""


class DataError(FedPeftError):
    """A dataset cannot be loaded or partitioned as asked."""


class ModelError(FedPeftError):
    """A model or PEFT method cannot be built as asked."""


class InvalidUpdate(FedPeftError):
    """A client's update payload was refused (malformed, wrong keys or shapes, non-finite)."""


@contextmanager
def reading(sender: str, what: str = "payload") -> Iterator[None]:
    """The boundary around reading anything another party sent: any exception inside (RecursionError from a
    deeply nested header, MemoryError, OverflowError, an IndexError in a decoder, anything) becomes
    ``InvalidUpdate`` naming ``sender``, so one hostile payload costs its sender's update and nothing else.

    Example:
        >>> with reading("c7"):
        ...     int("9" * 10_000)
        Traceback (most recent call last):
        ...
        fedpeft.errors.InvalidUpdate: c7: payload could not be read (ValueError: Exceeds the limit ...
    """
    try:
        yield
    except InvalidUpdate:
        raise
    except Exception as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise InvalidUpdate(f"{sender}: {what} could not be read ({type(exc).__name__}: {detail})") from None
