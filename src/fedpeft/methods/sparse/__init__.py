"""Sparse fine-tuning with a fixed mask (Sung et al., 2021); see ``method.py``."""

from fedpeft.methods.sparse.config import SparseMethod
from fedpeft.methods.sparse.method import SPARSE

__all__ = ["SPARSE", "SparseMethod"]
