"""The in-memory form every source is turned into: texts, integer labels, optional natural client keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fedpeft.errors import DataError


@dataclass(frozen=True)
class TextDataset:
    """Labelled texts with an optional group key per example (the natural client).

    Example:
        >>> ds = TextDataset(["good", "bad"], np.array([1, 0]), ["neg", "pos"])
        >>> len(ds), ds.num_labels
        (2, 2)
    """

    texts: list[str]
    labels: np.ndarray
    label_names: list[str]
    groups: np.ndarray | None = None
    name: str = "dataset"
    test: TextDataset | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")
        if self.groups is not None and len(self.groups) != len(self.texts):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {len(self.groups)} client keys")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, indices: np.ndarray) -> TextDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return TextDataset(
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            label_names=self.label_names,
            groups=None if self.groups is None else self.groups[idx],
            name=self.name,
        )


@dataclass(frozen=True)
class ImageDataset:
    """Labelled images (uint8, N x H x W grey or N x H x W x 3 colour) with optional client keys.

    Example:
        >>> ds = ImageDataset(np.zeros((3, 8, 8), np.uint8), np.array([0, 1, 1]), ["a", "b"])
        >>> len(ds.subset(np.array([0, 2]))), ds.num_labels
        (2, 2)
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    groups: np.ndarray | None = None
    name: str = "images"
    test: ImageDataset | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, indices: np.ndarray) -> ImageDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return ImageDataset(
            self.images[idx],
            self.labels[idx],
            self.label_names,
            None if self.groups is None else self.groups[idx],
            self.name,
        )


@dataclass(frozen=True)
class GenerationDataset:
    """Texts for a causal LM: prompts with ``targets`` (answers) for instruction tuning, or passages alone
    (``targets`` None) for language modelling. ``labels`` index ``label_names`` (a category, a speaker): they
    drive label-skewed partitions; ``groups`` are natural client keys.

    Example:
        >>> ds = GenerationDataset(["Hi?"], ["Hello."], np.array([0]), ["greetings"])
        >>> len(ds), ds.subset(np.array([0])).targets
        (1, ['Hello.'])
    """

    texts: list[str]
    targets: list[str] | None
    labels: np.ndarray
    label_names: list[str]
    groups: np.ndarray | None = None
    name: str = "texts"
    test: GenerationDataset | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, indices: np.ndarray) -> GenerationDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return GenerationDataset(
            [self.texts[i] for i in idx],
            None if self.targets is None else [self.targets[i] for i in idx],
            self.labels[idx],
            self.label_names,
            None if self.groups is None else self.groups[idx],
            self.name,
        )


# what a source gives: examples with labels, label names and optional client keys
Examples = TextDataset | ImageDataset | GenerationDataset


def from_frame(
    frame: pd.DataFrame,
    *,
    text_column: str,
    label_column: str,
    client_column: str | None,
    name: str,
    label_names: list[str] | None = None,
) -> TextDataset:
    """Build a TextDataset from a table, mapping string labels to ids in sorted order."""
    missing = [c for c in (text_column, label_column, client_column) if c and c not in frame.columns]
    if missing:
        raise DataError(
            f"{name}: column(s) {missing} not found; the file has {list(frame.columns)}. "
            "Set data.text_column / data.label_column / data.client_column to match."
        )
    frame = frame.dropna(subset=[text_column, label_column])
    if frame.empty:
        raise DataError(f"{name}: no rows with both a text and a label")
    raw = frame[label_column]
    if label_names is None:
        uniques = sorted(raw.unique().tolist(), key=lambda v: (str(type(v)), v))
        label_names = [str(u) for u in uniques]
        mapping = {u: i for i, u in enumerate(uniques)}
    else:
        mapping = {n: i for i, n in enumerate(label_names)}
        unknown = sorted(set(raw.unique()) - set(mapping))
        if unknown:
            raise DataError(f"{name}: labels {unknown[:5]} are not among {label_names}")
    if len(label_names) < 2:
        raise DataError(f"{name}: the label column {label_column!r} has a single value; need two or more")
    labels = raw.map(mapping).to_numpy(dtype=np.int64)
    groups = frame[client_column].astype(str).to_numpy() if client_column else None
    return TextDataset(frame[text_column].astype(str).tolist(), labels, label_names, groups, name)
