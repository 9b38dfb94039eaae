"""Exceptions that carry a message meant for the user: what is wrong and how to fix it."""


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
