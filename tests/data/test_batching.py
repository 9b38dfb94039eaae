import numpy as np

from fedpeft.data.batching import TokenizedDataset, length_sorted_batches, shuffled_batches


def test_batch_pads_and_masks() -> None:
    td = TokenizedDataset([[5, 6, 7], [5]], np.array([1, 0]), pad_id=0)
    b = td.batch(np.array([1, 0]))
    assert b["input_ids"].tolist() == [[5, 0, 0], [5, 6, 7]]
    assert b["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert b["labels"].tolist() == [0, 1]


def test_shuffled_batches_cover_an_epoch_once() -> None:
    seen = np.concatenate(list(shuffled_batches(23, 5, np.random.default_rng(0))))
    assert sorted(seen.tolist()) == list(range(23))


def test_length_sorted_batches_group_similar_lengths() -> None:
    batches = list(length_sorted_batches([5, 1, 4, 2, 3], 2))
    assert [b.tolist() for b in batches] == [[1, 3], [4, 2], [0]]
