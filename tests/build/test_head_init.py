"""The closed-form head (FedNCM class means, Fed3R ridge): its sums are exact over any split of the examples,
it is the centralised solution, and a run starts from it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fedpeft
from fedpeft.build import build_setup
from fedpeft.build.head_init import HeadStatistics, client_statistics, find_head
from fedpeft.config import load_config
from fedpeft.errors import ConfigError, ModelError


def _data(n: int, dim: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    y[:classes] = torch.arange(classes)  # every class present
    centres = torch.randn(classes, dim, generator=g) * 3
    return centres[y] + torch.randn(n, dim, generator=g), y


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(["class_means", "ridge"]),
    cuts=st.lists(st.integers(1, 59), max_size=6),
    seed=st.integers(0, 1000),
)
def test_sums_over_any_split_give_the_centralised_head(kind: str, cuts: list[int], seed: int) -> None:
    x, y = _data(60, 5, 3, seed)
    whole = HeadStatistics.empty(kind, 5, 3)  # type: ignore[arg-type]
    whole.add(x, y)
    merged = HeadStatistics.empty(kind, 5, 3)  # type: ignore[arg-type]
    order = torch.randperm(60, generator=torch.Generator().manual_seed(seed))
    bounds = [0, *sorted(set(cuts)), 60]
    for a, b in zip(bounds, bounds[1:]):  # clients holding any slice of a shuffled order (label skew included)
        part = HeadStatistics.empty(kind, 5, 3)  # type: ignore[arg-type]
        part.add(x[order[a:b]], y[order[a:b]])
        merged.merge(part)
    (w1, b1), (w2, b2) = whole.solve(0.5), merged.solve(0.5)
    torch.testing.assert_close(w1, w2)
    torch.testing.assert_close(b1, b2)


def test_class_means_head_is_nearest_mean() -> None:
    x, y = _data(200, 4, 3, 0)
    s = HeadStatistics.empty("class_means", 4, 3)
    s.add(x, y)
    w, b = s.solve()
    means = torch.stack([x[y == c].double().mean(0) for c in range(3)])
    torch.testing.assert_close(w, means)
    nearest = torch.cdist(x.double(), means).argmin(1)
    assert torch.equal((x.double() @ w.T + b).argmax(1), nearest)


def test_ridge_head_matches_least_squares_and_learns() -> None:
    x, y = _data(300, 6, 4, 1)
    s = HeadStatistics.empty("ridge", 6, 4)
    s.add(x, y)
    w, b = s.solve(ridge=2.0)
    x1 = torch.cat([x.double(), torch.ones(300, 1, dtype=torch.float64)], 1)
    target = nn.functional.one_hot(y, 4).double()
    expect = torch.linalg.solve(x1.T @ x1 + 2.0 * torch.eye(7, dtype=torch.float64), x1.T @ target)
    torch.testing.assert_close(torch.cat([w.T, b[None]], 0), expect)
    assert ((x.double() @ w.T + b).argmax(1) == y).float().mean() > 0.9


def test_a_class_no_client_has_is_not_predicted() -> None:
    x, y = _data(50, 3, 3, 2)
    keep = y != 2
    s = HeadStatistics.empty("class_means", 3, 3)
    s.add(x[keep], y[keep])
    w, b = s.solve()
    assert torch.isfinite(b).all()
    assert ((x.double() @ w.T + b).argmax(1) != 2).all()


def test_bytes_count_what_a_client_sends() -> None:
    assert HeadStatistics.empty("class_means", 384, 2).nbytes == 8 * (2 * 384 + 2)
    assert HeadStatistics.empty("ridge", 384, 2).nbytes == 8 * (385 * 386 // 2 + 385 * 2)


def test_find_head_skips_peft_frozen_original_and_refuses_a_model_without_one() -> None:
    model = nn.Module()
    model.classifier = nn.Module()
    model.classifier.original_module = nn.Linear(4, 2)
    model.classifier.modules_to_save = nn.ModuleDict({"default": nn.Linear(4, 2)})
    assert find_head(model, 2)[0] == "classifier.modules_to_save.default"
    with pytest.raises(ModelError, match="head_init: none"):
        find_head(nn.Sequential(nn.Linear(4, 2)), 2)


class _Dataset:
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        return {"inputs": self.x[idx], "labels": self.y[idx]}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 3)
        self.classifier = nn.Linear(3, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.body(inputs)))


def test_client_statistics_read_the_head_input_in_batches() -> None:
    net = _Net()
    x, y = _data(37, 5, 2, 3)
    stats = client_statistics(net, net.classifier, _Dataset(x, y), "class_means", torch.device("cpu"), 8)
    features = torch.tanh(net.body(x)).detach().double()
    torch.testing.assert_close(stats.sums["class_sum"][1], features[y == 1].sum(0))
    assert stats.sums["count"].tolist() == [float((y == 0).sum()), float((y == 1).sum())]


def test_a_run_starts_from_the_closed_form_head(tiny_config: dict[str, Any]) -> None:
    skew = ["partition.method=dirichlet", "partition.alpha=0.1", "partition.num_clients=6", "rounds=1"]
    plain = fedpeft.run(tiny_config, skew, progress=False)
    ridge = fedpeft.run(tiny_config, [*skew, "model.head_init=ridge"], progress=False)
    head = ridge["model"]["setup"]["head_init"]
    assert head["kind"] == "ridge" and head["clients"] == 6 and head["bytes_up_once"] > 0
    assert ridge["initial"]["accuracy"] > plain["initial"]["accuracy"]


def test_a_fisher_mask_and_a_set_head_report_their_own_clients_and_bytes(tiny_config: dict[str, Any]) -> None:
    sparse = ["peft.method=sparse", "peft.selection=fisher", "peft.fisher_clients=2", "peft.fisher_examples=8"]
    both = build_setup(load_config(tiny_config, [*sparse, "partition.num_clients=6", "model.head_init=ridge"]))
    mask, head = both.method_setup, both.method_setup["head_init"]
    assert mask["mask_selection"] == "fisher" and mask["clients"] == 2 and head["clients"] == 6
    assert head["bytes_up_once"] != mask["bytes_up_once"] > 0


@pytest.mark.parametrize(
    "privacy",
    [
        ["privacy.client_dp=central", "privacy.noise_multiplier=1.0"],
        ["privacy.dp_sgd.enabled=true", "privacy.dp_sgd.noise_multiplier=1.0"],
        ["privacy.secure_aggregation.enabled=true"],
    ],
)
def test_head_init_is_refused_with_privacy(tiny_config: dict[str, Any], privacy: list[str]) -> None:
    with pytest.raises(ConfigError, match="model.head_init: none"):
        fedpeft.run(tiny_config, ["model.head_init=class_means", *privacy], progress=False)
