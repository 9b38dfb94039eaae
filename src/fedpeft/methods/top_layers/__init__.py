"""Top-k layers: the last ``k`` blocks of the body train (with the task head); everything below is frozen,
so a client's frozen lower layers could also be computed once and cached."""

from fedpeft.methods.top_layers.config import TopLayersMethod
from fedpeft.methods.top_layers.method import TOP_LAYERS

__all__ = ["TOP_LAYERS", "TopLayersMethod"]
