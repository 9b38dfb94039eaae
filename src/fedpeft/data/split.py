"""Hold-out splits, fixed by seed: the central test set and each client's local test examples."""

from __future__ import annotations

import numpy as np

from fedpeft.config.schema import DataConfig
from fedpeft.data.dataset import Examples
from fedpeft.errors import DataError


def train_test_split(ds: Examples, cfg: DataConfig, seed: int) -> tuple[Examples, Examples]:
    """Split off the central test set (the dataset's own, if it ships one) and apply size caps."""
    rng = np.random.default_rng([seed, 0x7E57])
    if ds.test is not None:
        train, test = ds, ds.test
    else:
        order = rng.permutation(len(ds))
        n_test = max(1, int(round(cfg.test_fraction * len(ds))))
        if n_test >= len(ds):
            raise DataError(f"{ds.name}: {len(ds)} examples leave nothing to train on after the test split")
        train, test = ds.subset(np.sort(order[n_test:])), ds.subset(np.sort(order[:n_test]))
    if cfg.max_test_examples is not None and len(test) > cfg.max_test_examples:
        test = test.subset(np.sort(rng.permutation(len(test))[: cfg.max_test_examples]))
    if cfg.max_train_examples is not None and len(train) > cfg.max_train_examples:
        train = train.subset(np.sort(rng.permutation(len(train))[: cfg.max_train_examples]))
    return train, test


def local_holdout(indices: list[np.ndarray], fraction: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split each client's indices into (train, local test); a client keeps at least one training example."""
    rng = np.random.default_rng([seed, 0x10CA1])
    train, test = [], []
    for idx in indices:
        n_test = min(int(round(fraction * len(idx))), len(idx) - 1) if fraction > 0 else 0
        order = rng.permutation(idx)
        train.append(np.sort(order[n_test:]))
        test.append(np.sort(order[:n_test]))
    return train, test
