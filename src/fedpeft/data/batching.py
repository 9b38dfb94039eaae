"""Tokenise once, then cut padded batches from the token lists (no per-step tokeniser calls)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from fedpeft.data.dataset import TextDataset


def pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of token rows right-padded to the longest row."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[j, : len(r)] = 1
    return ids, mask


class ClientDataset(Protocol):
    """What local training needs from a client's examples: a size and batches by index."""

    def __len__(self) -> int: ...

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]: ...


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
        ids, mask = pad([self.input_ids[i] for i in idx], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.from_numpy(self.labels[idx])}

    def subset(self, idx: np.ndarray) -> TokenizedDataset:
        return TokenizedDataset([self.input_ids[i] for i in idx], self.labels[idx], self.pad_id)


@dataclass(frozen=True)
class CausalLMDataset:
    """Token sequences for language modelling; ``loss_from[i]`` tokens of example i are context only
    (a prompt), so the loss covers the rest (an answer). Padding never counts.

    Example:
        >>> lm = CausalLMDataset([[5, 6, 7], [5, 8]], np.array([1, 0]), pad_id=0)
        >>> lm.batch(np.array([0, 1]))["labels"].tolist()
        [[-100, 6, 7], [5, 8, -100]]
    """

    input_ids: list[list[int]]
    loss_from: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        ids, mask = pad([self.input_ids[i] for i in idx], self.pad_id)
        labels = torch.where(mask.bool(), ids, -100)
        for j, i in enumerate(idx):
            labels[j, : int(self.loss_from[i])] = -100  # the prompt is context, not a target
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def subset(self, idx: np.ndarray) -> CausalLMDataset:
        return CausalLMDataset([self.input_ids[i] for i in idx], self.loss_from[idx], self.pad_id)


@dataclass(frozen=True)
class ArrayDataset:
    """Examples held as equal-length tensors (images as ``pixel_values``, ``labels``); batches index them.

    Example:
        >>> ds = ArrayDataset({"pixel_values": torch.zeros(4, 3, 8, 8), "labels": torch.arange(4)})
        >>> ds.batch(np.array([1, 3]))["labels"].tolist()
        [1, 3]
    """

    tensors: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long)
        return {k: v[index] for k, v in self.tensors.items()}

    def subset(self, idx: np.ndarray) -> ArrayDataset:
        return ArrayDataset(self.batch(idx))


def tokenize(ds: TextDataset, tokenizer: Any, max_length: int) -> TokenizedDataset:
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
