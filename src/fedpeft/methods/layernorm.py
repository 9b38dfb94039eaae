"""LayerNorm-only tuning: only normalisation layers' weights and biases train."""

from fedpeft.methods.selective import norms, selective_method

LAYERNORM = selective_method("layernorm", norms, "it has no LayerNorm / RMSNorm layers")
