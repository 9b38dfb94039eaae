import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.strategy import ClientUpdate, FedAvg, sample_clients, weighted_mean


def test_fedavg_weights_by_examples_and_applies_server_lr() -> None:
    # Prepare
    g = {"w": torch.tensor([1.0, 1.0])}
    ups = [
        ClientUpdate("a", {"w": torch.tensor([2.0, 0.0])}, num_examples=1),
        ClientUpdate("b", {"w": torch.tensor([-2.0, 4.0])}, num_examples=3),
    ]
    # Execute
    out = FedAvg(per_round=2, server_lr=0.5).aggregate(1, g, ups)
    # Assert: mean delta = (1*[2,0] + 3*[-2,4]) / 4 = [-1, 3]; new = 1 + 0.5 * mean
    assert out["w"].tolist() == [0.5, 2.5]


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=6), seed=st.integers(0, 999))
def test_weighted_mean_matches_numpy(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    deltas = [rng.normal(size=(3, 2)).astype(np.float32) for _ in sizes]
    ups = [ClientUpdate(str(i), {"w": torch.from_numpy(d)}, n) for i, (d, n) in enumerate(zip(deltas, sizes))]
    expected = np.average(np.stack(deltas), axis=0, weights=sizes)
    assert np.allclose(weighted_mean(ups)["w"].numpy(), expected, atol=1e-5)


def test_single_client_round_gives_that_clients_state() -> None:
    g = {"w": torch.randn(5)}
    d = torch.randn(5)
    out = FedAvg(per_round=1).aggregate(1, g, [ClientUpdate("a", {"w": d}, 7)])
    assert torch.allclose(out["w"], g["w"] + d)


def test_sampling_is_seeded_without_replacement() -> None:
    ids = [f"c{i}" for i in range(20)]
    a = sample_clients(ids, 5, np.random.default_rng(1))
    assert a == sample_clients(ids, 5, np.random.default_rng(1))
    assert len(set(a)) == 5 and set(a) <= set(ids)
    assert sample_clients(ids, 50, np.random.default_rng(1)) == ids


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_state_keeps_its_dtype(dtype: torch.dtype) -> None:
    g = {"w": torch.ones(3, dtype=dtype)}
    out = FedAvg(1).aggregate(1, g, [ClientUpdate("a", {"w": torch.ones(3, dtype=dtype)}, 1)])
    assert out["w"].dtype == dtype and out["w"].tolist() == [2.0, 2.0, 2.0]
