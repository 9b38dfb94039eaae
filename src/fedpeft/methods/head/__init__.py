"""Head-only (linear probe): the base stays frozen; only the new task head trains."""

from fedpeft.methods.head.config import HeadMethod
from fedpeft.methods.head.method import HEAD

__all__ = ["HEAD", "HeadMethod"]
