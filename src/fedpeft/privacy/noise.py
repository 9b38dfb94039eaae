"""Gaussian noise for DP: seeded (the same seed path gives the same draw in any process, so runs reproduce), or
secret (each draw seeded from 63 bits of OS entropy, so no one who knows the run's seed can regenerate it and
subtract it from a release)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np
import torch


def gaussian(shape: torch.Size, std: float, seed: Sequence[int], secret: bool = False) -> torch.Tensor:
    """N(0, std^2) of ``shape``, drawn from a generator seeded by the integer path ``seed`` (or, if ``secret``,
    by fresh OS entropy, ignoring ``seed``).

    Example:
        >>> bool((gaussian(torch.Size([3]), 1.0, [0, 1]) == gaussian(torch.Size([3]), 1.0, [0, 1])).all())
        True
        >>> bool((gaussian(torch.Size([3]), 1.0, [0, 1], True) == gaussian(torch.Size([3]), 1.0, [0, 1], True)).all())
        False
    """
    state = secret_seed() if secret else int(np.random.SeedSequence(list(seed)).generate_state(1)[0])
    return torch.randn(shape, generator=torch.Generator().manual_seed(state)) * std


def secret_seed() -> int:
    """63 bits of OS entropy, for a generator whose draws must not be reproducible."""
    return secrets.randbits(63)
