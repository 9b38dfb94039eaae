"""Readers of the packaged corpora: chat pairs, a play by character, MNIST and digits."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from fedpeft.data.corpora import _idx, chatterbot_pairs, digits, hamlet, mnist, play_speeches
from fedpeft.errors import DataError

PLAY = """ACT I
SCENE I. A room.
Enter KING and Ghost
KING
Who goes there?
Speak.
Ghost
Mark me.
Exit Ghost
KING
Sings
A song, a song.

Ghost
Remember.
"""


def test_play_speeches_follow_speakers_and_drop_directions(tmp_path: Path) -> None:
    path = tmp_path / "play.txt"
    path.write_text(PLAY)
    rows = play_speeches(path).to_dict("records")
    assert rows == [
        {"character": "King", "text": "Who goes there?\nSpeak."},
        {"character": "Ghost", "text": "Mark me."},
        {"character": "King", "text": "A song, a song."},
        {"character": "Ghost", "text": "Remember."},
    ]


def test_hamlet_is_split_by_character() -> None:
    play = hamlet()
    counts = play["character"].value_counts()
    assert counts.index[0] == "Hamlet" and counts.iloc[0] > 300 and len(counts) >= 30
    assert {"Ophelia", "Ghost", "First Clown", "Lord Polonius"} <= set(counts.index)
    assert not any(c.startswith(("Enter", "Exit", "Exeunt")) for c in counts.index)
    assert (play["text"].str.len() > 0).all()


def test_chatterbot_pairs_by_category_and_language() -> None:
    english = chatterbot_pairs(["english"])
    assert english["category"].nunique() == 21 and len(english) > 2000
    assert (english["question"].str.len() > 0).all() and (english["answer"].str.len() > 0).all()
    two = chatterbot_pairs(["english", "german"])
    assert set(two["language"]) == {"english", "german"} and len(two) > len(english)
    with pytest.raises(DataError, match="no language"):
        chatterbot_pairs(["klingon"])


def test_mnist_is_the_canonical_60k_10k() -> None:
    x, y = mnist("train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and np.bincount(y).min() > 5000
    xt, yt = mnist("test")
    assert xt.shape == (10000, 28, 28) and set(yt.tolist()) == set(range(10))


def test_a_damaged_idx_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02"))
    with pytest.raises(DataError, match="2 values for dimensions"):
        _idx(bad)


def test_digits_are_scaled_like_mnist() -> None:
    x, y = digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.uint8 and x.max() == 255 and set(y.tolist()) == set(range(10))
