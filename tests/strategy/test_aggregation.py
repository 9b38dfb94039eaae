"""Hand-computed aggregates for every strategy (Prepare / Execute / Assert), and FLoRA's exactness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.model.lora_factors import lora_pairs, pad, product, split, truncate
from fedpeft.strategy import (
    ClientUpdate,
    FedAvgM,
    FedOpt,
    FedProx,
    FedSALora,
    FlexLora,
    FLora,
    HetLora,
    Scaffold,
)

A, B = "m.lora_A.default.weight", "m.lora_B.default.weight"


def up(cid: str, n: int, **tensors: torch.Tensor) -> ClientUpdate:
    return ClientUpdate(cid, {k.replace("__", "."): v for k, v in tensors.items()}, n)


def test_fedprox_aggregates_as_fedavg() -> None:
    # Prepare
    s = FedProx(per_round=2, mu=0.5)
    ups = [up("a", 1, w=torch.tensor([2.0])), up("b", 3, w=torch.tensor([6.0]))]
    # Execute
    out = s.aggregate(1, {"w": torch.tensor([1.0])}, ups)
    # Assert: 1 + (1*2 + 3*6) / 4 = 6
    assert out["w"].item() == pytest.approx(6.0)


def test_fedavgm_accumulates_velocity() -> None:
    s = FedAvgM(per_round=1, momentum=0.9, server_lr=0.5)
    w = {"w": torch.tensor([0.0])}
    w = s.aggregate(1, w, [up("a", 1, w=torch.tensor([2.0]))])  # v = 2, w = 0 + 0.5*2 = 1
    w = s.aggregate(2, w, [up("a", 1, w=torch.tensor([-1.0]))])  # v = 0.9*2 - 1 = 0.8, w = 1 + 0.4
    assert w["w"].item() == pytest.approx(1.4)


@pytest.mark.parametrize(
    ("rule", "v2"),
    [
        # d1 = 2, d2 = 1; b2 = 0.5, v0 = tau^2 = 0.01
        ("adam", 0.5 * (0.5 * 0.01 + 0.5 * 4) + 0.5 * 1),
        ("yogi", (0.01 + 0.5 * 4) - 0.5 * 1 * np.sign((0.01 + 0.5 * 4) - 1)),
        ("adagrad", 0.01 + 4 + 1),
    ],
)
def test_fedopt_second_moments(rule: str, v2: float) -> None:
    # Prepare
    s = FedOpt(per_round=1, rule=rule, server_lr=0.1, beta1=0.5, beta2=0.5, tau=0.1)  # type: ignore[arg-type]
    w = {"w": torch.tensor([0.0])}
    # Execute
    w1 = s.aggregate(1, w, [up("a", 1, w=torch.tensor([2.0]))])
    w2 = s.aggregate(2, w1, [up("a", 1, w=torch.tensor([1.0]))])
    # Assert: m2 = 0.5 * (0.5 * 2) + 0.5 * 1 = 1.0
    assert s.v["w"].item() == pytest.approx(v2, rel=1e-5)
    assert (w2["w"] - w1["w"]).item() == pytest.approx(0.1 * 1.0 / (np.sqrt(v2) + 0.1), rel=1e-5)


def test_scaffold_updates_model_and_server_control() -> None:
    s = Scaffold(per_round=2)
    s.initialize({"w": torch.zeros(2)}, num_clients=8)
    ups = [
        ClientUpdate("a", {"w": torch.tensor([1.0, 0.0]), "scaffold.dc/w": torch.tensor([4.0, 0.0])}, 1),
        ClientUpdate("b", {"w": torch.tensor([3.0, 2.0]), "scaffold.dc/w": torch.tensor([0.0, 8.0])}, 1),
    ]
    s.aggregate_train(1, ups)
    assert s.global_state["w"].tolist() == [2.0, 1.0]
    assert s.control["w"].tolist() == [0.5, 1.0]  # (2 / 8) * mean([4, 0], [0, 8])
    tensors, _ = s.downlink(2, "a")
    assert torch.equal(tensors["scaffold.c/w"], s.control["w"])
    assert set(s.uplink_spec("a", {})) == {"w", "scaffold.dc/w"}


def test_scaffold_refuses_mixed_ranks() -> None:
    with pytest.raises(ValueError, match="mixed LoRA ranks"):
        Scaffold(per_round=1).initialize({A: torch.zeros(2, 3), B: torch.zeros(3, 2)}, ranks={"a": 1})


def lora_state(r: int, d_in: int = 5, d_out: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {A: torch.randn(r, d_in, generator=g), B: torch.zeros(d_out, r), "head": torch.zeros(2)}


def test_fedsa_keeps_b_on_clients_and_averages_a() -> None:
    s = FedSALora(per_round=2)
    s.initialize(lora_state(2))
    assert set(s.downlink(1, "a")[0]) == {A, "head"}
    assert set(s.uplink_spec("a", {})) == {A, "head"}
    ups = [
        up("a", 1, **{A.replace(".", "__"): torch.ones(2, 5), "head": torch.ones(2)}),
        up("b", 1, **{A.replace(".", "__"): 3 * torch.ones(2, 5), "head": torch.ones(2)}),
    ]
    before = s.global_state[A].clone()
    s.aggregate_train(1, ups)
    assert torch.allclose(s.global_state[A], before + 2)
    assert torch.equal(s.global_state[B], torch.zeros(4, 2))


def test_hetlora_weights_by_update_norm_and_pads_low_ranks() -> None:
    # Prepare: global A, B zero; client a (rank 1) and b (rank 2) send absolute factors as deltas.
    s = HetLora(per_round=2)
    s.initialize({A: torch.zeros(2, 2), B: torch.zeros(2, 2)}, ranks={"a": 1, "b": 2})
    a = ClientUpdate("a", {A: torch.tensor([[1.0, 0.0]]), B: torch.tensor([[1.0], [0.0]])}, 1, {"rank": 1.0})
    b = ClientUpdate("b", {A: torch.eye(2), B: 3 * torch.eye(2)}, 1, {"rank": 2.0})
    # Execute
    s.aggregate_train(1, [s.receive(a), s.receive(b)])
    # Assert: ||B_a A_a|| = 1, ||B_b A_b|| = 3 sqrt(2); weights proportional to those norms
    wa, wb = 1 / (1 + 3 * np.sqrt(2)), 3 * np.sqrt(2) / (1 + 3 * np.sqrt(2))
    expected_a = wa * torch.tensor([[1.0, 0.0], [0.0, 0.0]]) + wb * torch.eye(2)
    assert torch.allclose(s.global_state[A], expected_a, atol=1e-6)
    assert torch.allclose(
        s.global_state[B], wa * torch.tensor([[1.0, 0.0], [0.0, 0.0]]) + wb * 3 * torch.eye(2), atol=1e-6
    )
    assert s.downlink(2, "a")[0][A].shape == (1, 2)  # cut to the client's rank


def test_flexlora_gives_each_rank_its_best_approximation() -> None:
    # Prepare: two full-rank (2) clients whose products sum to a known matrix.
    s = FlexLora(per_round=2)
    s.initialize({A: torch.zeros(2, 3), B: torch.zeros(3, 2)}, ranks={"a": 2, "b": 2, "c": 1})
    ua = ClientUpdate(
        "a",
        {A: torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), B: torch.tensor([[2.0, 0], [0, 1], [0, 0]])},
        1,
        {"rank": 2.0},
    )
    ub = ClientUpdate(
        "b", {A: torch.tensor([[0, 0, 1.0], [0, 0, 0]]), B: torch.tensor([[0, 0], [0, 0], [4.0, 0]])}, 1, {"rank": 2.0}
    )
    # Execute
    s.aggregate_train(1, [ua, ub])
    # Assert: W = 0.5 * (diag(2, 1, 0) + 4 e3 e3^T) = diag(1, 0.5, 2)
    target = torch.diag(torch.tensor([1.0, 0.5, 2.0]))
    got = product(s.global_state[A], s.global_state[B])
    best2 = torch.diag(torch.tensor([1.0, 0.0, 2.0]))  # the rank-2 SVD truncation keeps 2 and 1
    assert torch.allclose(got, best2, atol=1e-5)
    down = s.downlink(2, "c")[0]  # rank 1: the top singular component only
    assert torch.allclose(product(down[A], down[B]), torch.diag(torch.tensor([0.0, 0.0, 2.0])), atol=1e-5)
    assert float((target - got).norm()) == pytest.approx(0.5, abs=1e-5)


def test_split_truncations_are_best_approximations() -> None:
    torch.manual_seed(0)
    w = torch.randn(6, 5)
    a, b = split(w, 4, torch.zeros(4, 5), torch.zeros(6, 4))
    s = torch.linalg.svdvals(w)
    for r in (1, 2, 4):
        err = (w - product(a[:r], b[:, :r])).norm()
        assert float(err) == pytest.approx(float(s[r:].norm()), rel=1e-4)  # Eckart-Young


@settings(max_examples=30, deadline=None)
@given(
    ranks=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    seed=st.integers(0, 10_000),
    sizes=st.lists(st.integers(1, 40), min_size=5, max_size=5),
)
def test_flora_stack_is_exactly_the_weighted_sum_of_products(ranks: list[int], seed: int, sizes: list[int]) -> None:
    # Prepare: clients of random mixed ranks with random factors, on a model of rank max(ranks).
    full = max(ranks)
    g = torch.Generator().manual_seed(seed)
    s = FLora(per_round=len(ranks), model=None)
    init = {A: torch.randn(full, 7, generator=g), B: torch.zeros(5, full)}
    s.initialize(init, ranks={str(i): r for i, r in enumerate(ranks)})
    ups, products = [], []
    for i, r in enumerate(ranks):
        a, b = torch.randn(r, 7, generator=g), torch.randn(5, r, generator=g)
        delta = {A: a - init[A][:r], B: b}
        ups.append(s.receive(ClientUpdate(str(i), delta, sizes[i], {"rank": float(r)})))
        products.append(b @ a)
    # Execute
    stack = s.stacked(init, ups)
    # Assert
    w = np.array(sizes[: len(ranks)], dtype=float) / sum(sizes[: len(ranks)])
    expected = sum(wi * p for wi, p in zip(w, products))
    assert stack[A].shape[0] == sum(ranks)
    assert torch.allclose(product(stack[A], stack[B]), expected, atol=1e-5 * max(1.0, float(expected.abs().max())))


def test_plain_fedavg_of_factors_is_not_the_average_product() -> None:
    """The error FLoRA removes: mean(B) mean(A) differs from mean(B A) (measured, relative Frobenius)."""
    torch.manual_seed(0)
    errors = []
    for _ in range(20):
        a = [torch.randn(4, 16) for _ in range(5)]
        b = [torch.randn(16, 4) for _ in range(5)]
        exact = sum(bi @ ai for ai, bi in zip(a, b)) / 5
        naive = (sum(b) / 5) @ (sum(a) / 5)
        errors.append(float((naive - exact).norm() / exact.norm()))
    assert np.mean(errors) > 0.5  # independent factors: the naive product is mostly wrong


def test_truncate_and_pad_are_inverse_on_the_kept_part() -> None:
    state = {A: torch.randn(4, 3), B: torch.randn(2, 4), "x": torch.ones(1)}
    pairs = lora_pairs(state)
    cut = truncate(state, pairs, 2)
    assert cut[A].shape == (2, 3) and cut[B].shape == (2, 2) and torch.equal(cut["x"], state["x"])
    back = pad(cut, pairs, 4)
    assert torch.equal(back[A][:2], state[A][:2]) and back[A][2:].abs().sum() == 0
    assert torch.equal(back[B][:, :2], state[B][:, :2]) and back[B][:, 2:].abs().sum() == 0
