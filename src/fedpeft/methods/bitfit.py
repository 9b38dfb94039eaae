"""BitFit (Ben Zaken et al., 2022): only bias terms train."""

from fedpeft.methods.selective import biases, selective_method

BITFIT = selective_method("bitfit", biases, "it has no bias parameters (e.g. Llama-style decoders)")
