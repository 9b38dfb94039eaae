"""Tokenise once, then cut padded batches from the token lists (no per-step tokeniser calls)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fedpeft.data.dataset import TextDataset


@dataclass(frozen=True)
class TokenizedDataset:
    """Token ids per example plus labels; ``batch`` pads to the longest example in the batch.

    Example:
        >>> td = TokenizedDataset([[101, 7, 102], [101, 102]], np.array([1, 0]), pad_id=0)
        >>> td.batch(np.array([0, 1]))["input_ids"].tolist()
        [[101, 7, 102], [101, 102, 0]]
    """

    input_ids: list[list[int]]
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        rows = [self.input_ids[i] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[j, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.from_numpy(self.labels[idx])}

    def subset(self, idx: np.ndarray) -> TokenizedDataset:
        return TokenizedDataset([self.input_ids[i] for i in idx], self.labels[idx], self.pad_id)


def tokenize(ds: TextDataset, tokenizer, max_length: int) -> TokenizedDataset:
    enc = tokenizer(ds.texts, truncation=True, max_length=max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return TokenizedDataset(list(enc["input_ids"]), ds.labels, int(pad))


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One epoch of shuffled index batches (the last one may be short)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def length_sorted_batches(lengths: list[int], batch_size: int) -> Iterator[np.ndarray]:
    """Batches of similar length for evaluation: far less padding, same results."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
