"""Seeded Gaussian noise: the same seed path gives the same draw in any process."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def gaussian(shape: torch.Size, std: float, seed: Sequence[int]) -> torch.Tensor:
    """N(0, std^2) of ``shape``, drawn from a generator seeded by the integer path ``seed``.

    Example:
        >>> bool((gaussian(torch.Size([3]), 1.0, [0, 1]) == gaussian(torch.Size([3]), 1.0, [0, 1])).all())
        True
    """
    state = int(np.random.SeedSequence(list(seed)).generate_state(1)[0])
    return torch.randn(shape, generator=torch.Generator().manual_seed(state)) * std
