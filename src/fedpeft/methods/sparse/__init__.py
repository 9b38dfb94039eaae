"""Sparse fine-tuning with a fixed mask (Sung et al., 2021): a chosen ``density`` of the entries of every
weight matrix trains, through a parametrisation ``W = W0 + scatter(values)``. Only ``values`` is a trainable
tensor, so only the masked entries travel and only they have optimiser state.

The mask is fixed before round 1 and the same for all clients: by magnitude of the pretrained weights, at
random (seeded by the tensor's name, so every client draws the same), or by diagonal Fisher information.
For Fisher each participating client sums squared mini-batch gradients on its own examples and sends only
its top entries (index and score) once; the server adds the scores and keeps the top entries per tensor.
"""

from fedpeft.methods.sparse.config import SparseMethod
from fedpeft.methods.sparse.method import SPARSE

__all__ = ["SPARSE", "SparseMethod"]
