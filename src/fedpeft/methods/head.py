"""Head-only (linear probe): the base stays frozen; only the new task head trains."""

from fedpeft.methods.selective import selective_method

HEAD = selective_method(
    "head", lambda model, cfg: set(),
    "it has no new task head (a causal LM's output layer is its tied input embedding)",
)
