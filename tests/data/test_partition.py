import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.config.schema import PartitionConfig
from fedpeft.data.partition import partition
from fedpeft.errors import DataError

labels_st = st.lists(st.integers(0, 4), min_size=40, max_size=300).map(np.array)


def _check_disjoint_cover(parts: list[np.ndarray], n: int) -> None:
    flat = np.concatenate(parts)
    assert len(flat) == len(np.unique(flat)), "an example was given to two clients"
    assert flat.min() >= 0 and flat.max() < n


@settings(max_examples=40, deadline=None)
@given(
    labels=labels_st,
    k=st.integers(1, 10),
    method=st.sampled_from(["iid", "dirichlet", "quantity"]),
    seed=st.integers(0, 2**16),
)
def test_synthetic_partitions_cover_every_example_exactly_once(labels, k, method, seed) -> None:
    cfg = PartitionConfig(method=method, num_clients=k, alpha=1.0)
    p = partition(labels, None, cfg, seed)
    assert len(p.client_ids) == k == len(set(p.client_ids))
    _check_disjoint_cover(p.indices, len(labels))
    assert sum(p.sizes()) == len(labels)
    assert min(p.sizes()) >= 1


@settings(max_examples=25, deadline=None)
@given(labels=labels_st, seed=st.integers(0, 2**16))
def test_same_seed_same_split_and_other_seed_differs(labels, seed) -> None:
    cfg = PartitionConfig(method="dirichlet", num_clients=4, alpha=0.5)
    a, b = partition(labels, None, cfg, seed), partition(labels, None, cfg, seed)
    assert all(np.array_equal(x, y) for x, y in zip(a.indices, b.indices))


def test_iid_sizes_differ_by_at_most_one() -> None:
    p = partition(np.zeros(103, dtype=int), None, PartitionConfig(method="iid", num_clients=10), 0)
    assert max(p.sizes()) - min(p.sizes()) <= 1


def test_small_alpha_skews_labels_more_than_large_alpha() -> None:
    labels = np.repeat(np.arange(4), 500)

    def mean_max_share(alpha: float) -> float:
        p = partition(labels, None, PartitionConfig(method="dirichlet", num_clients=10, alpha=alpha), 1)
        hist = np.array(p.label_histograms(labels, 4), dtype=float)
        return float((hist.max(1) / hist.sum(1)).mean())

    assert mean_max_share(0.1) > 0.6 > 0.35 > mean_max_share(100.0)


def test_shards_give_each_client_at_most_k_labels() -> None:
    labels = np.repeat(np.arange(10), 60)
    p = partition(labels, None, PartitionConfig(method="shards", num_clients=20, shards_per_client=2), 0)
    _check_disjoint_cover(p.indices, len(labels))
    assert sum(p.sizes()) == len(labels)
    assert max(len(np.unique(labels[i])) for i in p.indices) <= 2


def test_quantity_skew_varies_sizes_but_not_label_mix() -> None:
    labels = np.tile([0, 1], 1000)
    p = partition(labels, None, PartitionConfig(method="quantity", num_clients=8, alpha=0.3), 0)
    assert max(p.sizes()) > 3 * min(p.sizes())


def test_natural_uses_groups_and_can_keep_the_largest() -> None:
    groups = np.array(["b", "a", "b", "c", "b", "a"])
    labels = np.zeros(6, dtype=int)
    p = partition(labels, groups, PartitionConfig(method="natural"), 0)
    assert p.client_ids == ["a", "b", "c"] and p.sizes() == [2, 3, 1]
    top = partition(labels, groups, PartitionConfig(method="natural", num_clients=2), 0)
    assert top.client_ids == ["a", "b"]
    big = partition(labels, groups, PartitionConfig(method="natural", min_examples_per_client=2), 0)
    assert big.client_ids == ["a", "b"]


@pytest.mark.parametrize(
    "cfg, groups, match",
    [
        (PartitionConfig(method="iid", num_clients=50), None, "cannot split 20 training examples into 50"),
        (PartitionConfig(method="shards", num_clients=4, shards_per_client=3), None, "exceeds the 2 labels"),
        (PartitionConfig(method="natural"), None, "Set data.client_column"),
        (PartitionConfig(method="natural", num_clients=6), np.array(list("aabbccddee") * 2), "only 5"),
        (
            PartitionConfig(method="dirichlet", num_clients=10, alpha=0.01, min_examples_per_client=2),
            None,
            "raise partition.alpha",
        ),
    ],
)
def test_impossible_requests_are_refused(cfg, groups, match) -> None:
    labels = np.tile([0, 1], 10)
    with pytest.raises(DataError, match=match):
        partition(labels, groups, cfg, 0)


def test_dirichlet_over_clients_gives_equal_sizes_and_skewed_mixes() -> None:
    labels = np.random.default_rng(0).integers(0, 2, 5000)
    cfg = PartitionConfig(method="dirichlet", alpha=0.1, num_clients=50, dirichlet_over="clients")
    p = partition(labels, None, cfg, seed=0)
    assert sorted(np.concatenate(p.indices).tolist()) == list(range(5000))  # every example once
    assert max(p.sizes()) - min(p.sizes()) <= 1
    majority = [max(h) / sum(h) for h in p.label_histograms(labels, 2)]
    assert np.median(majority) > 0.9  # alpha 0.1: most clients hold almost one label
    assert partition(labels, None, cfg, seed=0).indices[3].tolist() == p.indices[3].tolist()
