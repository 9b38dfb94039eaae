"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021), which peft does not provide.

A small residual bottleneck (down-projection, activation, zero-initialised up-projection) is attached to
the output of chosen modules through a forward hook, so the base model's own parameter names and code stay
untouched. Houlsby places one after the attention output projection and one after the feed-forward output
of every block; Pfeiffer only the latter. On a CNN (both variants) an adapter made of
1x1 convolutions follows every inverted-residual block.
"""

from fedpeft.methods.adapters.config import AdapterMethod
from fedpeft.methods.adapters.method import HOULSBY, PFEIFFER

__all__ = ["AdapterMethod", "HOULSBY", "PFEIFFER"]
