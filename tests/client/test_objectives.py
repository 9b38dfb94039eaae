"""Label-skew objectives: balanced softmax and FedLC's logit calibration, checked against their papers' formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.client.objectives import ABSENT, ClientObjective, label_counts, logit_offsets, offset_loss
from fedpeft.client.trainer import LocalTrainer
from fedpeft.config.schema import ClientConfig, RunConfig
from fedpeft.data.batching import TokenizedDataset
from fedpeft.model.state import TrainableState
from tests.client.test_cohort import replies
from tests.client.test_trainer import BagOfTokens
from tests.model.test_device import lm_data, tiny_llama

counts_st = st.lists(st.integers(1, 500), min_size=2, max_size=6)


@settings(max_examples=40, deadline=None)
@given(counts=counts_st, seed=st.integers(0, 1000))
def test_balanced_softmax_is_the_prior_weighted_likelihood(counts: list[int], seed: int) -> None:
    """Ren et al. (2020), eq. 4: p(y|x) = n_y exp(z_y) / sum_c n_c exp(z_c)."""
    g = torch.Generator().manual_seed(seed)
    k = len(counts)
    z = torch.randn(5, k, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (5,), generator=g)
    n = torch.tensor(counts, dtype=torch.float64)
    expected = -torch.log(n[y] * z.gather(1, y[:, None]).squeeze(1).exp() / (n * z.exp()).sum(1)).mean()
    got = offset_loss(z, y, logit_offsets("balanced_softmax", np.array(counts), k).double())
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    scaled = logit_offsets("balanced_softmax", 7 * np.array(counts), k)  # only the client's proportions count
    assert float(offset_loss(z, y, scaled.double())) == pytest.approx(float(expected), rel=1e-5)


@settings(max_examples=40, deadline=None)
@given(counts=counts_st, tau=st.floats(0.1, 5.0), seed=st.integers(0, 1000))
def test_logit_calibration_matches_fedlc(counts: list[int], tau: float, seed: int) -> None:
    """Zhang et al. (2022), eq. 9: softmax over z_c - tau * n_c^(-1/4)."""
    g = torch.Generator().manual_seed(seed)
    k = len(counts)
    z = torch.randn(5, k, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (5,), generator=g)
    cal = z - tau * torch.tensor(counts, dtype=torch.float64) ** -0.25
    expected = -(cal.gather(1, y[:, None]).squeeze(1) - cal.logsumexp(1)).mean()
    got = offset_loss(z, y, logit_offsets("logit_calibration", np.array(counts), k, tau).double())
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


@given(k=st.integers(2, 8))
def test_balanced_counts_leave_cross_entropy_unchanged(k: int) -> None:
    z, y = torch.randn(4, k), torch.randint(0, k, (4,))
    plain = torch.nn.functional.cross_entropy(z, y)
    torch.testing.assert_close(offset_loss(z, y, logit_offsets("balanced_softmax", np.full(k, 9), k)), plain)
    torch.testing.assert_close(offset_loss(z, y, None), plain)


def test_a_label_the_client_lacks_gets_no_gradient_and_no_nan() -> None:
    z = torch.zeros(3, 3, requires_grad=True)
    offsets = logit_offsets("balanced_softmax", np.array([5, 0]), 3)  # label 1 absent, label 2 beyond the counts
    assert offsets.tolist()[1:] == pytest.approx([np.log(ABSENT)] * 2)
    offset_loss(z, torch.zeros(3, dtype=torch.long), offsets).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert z.grad[:, 1:].abs().max() < 1e-3  # the absent labels are neither learnt nor unlearnt


def test_label_counts_reads_every_classification_dataset_and_refuses_language_data() -> None:
    assert label_counts(TokenizedDataset([[1], [2], [3]], np.array([2, 0, 2]), 0)).tolist() == [1, 0, 2]
    assert label_counts(type("A", (), {"tensors": {"labels": torch.tensor([1, 1])}})()).tolist() == [0, 2]
    with pytest.raises(ValueError, match="needs class labels"):
        ClientObjective("balanced_softmax").start(type("LM", (), {"input_ids": [[1, 2]]})())


def one_label_client(n: int = 32) -> TokenizedDataset:
    rng = np.random.default_rng(0)
    return TokenizedDataset([[3, int(rng.integers(1, 3))] for _ in range(n)], np.zeros(n, dtype=np.int64), 0)


@pytest.mark.parametrize("loss", ["balanced_softmax", "logit_calibration"])
def test_a_one_label_client_does_not_write_its_prior_into_the_model(loss: str) -> None:
    """With cross-entropy a client holding only label 0 drives the shared head towards 0; the label-skew
    objectives explain its prior by the offsets, so the head barely moves."""
    moved = {}
    for name in ("cross_entropy", loss):
        torch.manual_seed(0)
        model = BagOfTokens()
        before = model.classifier.bias.detach().clone()
        cfg = ClientConfig(local_steps=20, batch_size=8, lr=0.05, optimizer="sgd", loss=name, calibration_tau=4.0)
        LocalTrainer(model, TrainableState(model), cfg).train(one_label_client(), np.random.default_rng(0))
        gap = model.classifier.bias.detach() - before
        moved[name] = float(gap[0] - gap[1])  # how far the head moved towards label 0
    assert moved["cross_entropy"] > 0.2
    assert abs(moved[loss]) < 0.1 * moved["cross_entropy"]


def test_the_objectives_are_refused_where_they_do_not_hold() -> None:
    with pytest.raises(ValueError, match="DP-SGD's per-example bound"):
        RunConfig.model_validate(
            {"clients": {"loss": "balanced_softmax"}, "privacy": {"dp_sgd": {"enabled": True, "noise_multiplier": 1}}}
        )
    with pytest.raises(ValueError, match="calibration_tau"):
        RunConfig.model_validate({"clients": {"calibration_tau": 0}})


def test_a_cohort_trains_a_calibrated_client_as_if_alone(
    tiny_config: dict, no_dropout_model: Path, tmp_path: Path
) -> None:
    overrides = [
        "peft.dropout=0.0",
        "clients.loss=logit_calibration",
        "clients.local_steps=null",
        "clients.batch_size=8",
        "partition.method=dirichlet",
        "partition.alpha=0.3",
    ]
    alone = replies(tiny_config, no_dropout_model, tmp_path, overrides, cohort=False)
    together = replies(tiny_config, no_dropout_model, tmp_path, overrides, cohort=True)
    plain = replies(tiny_config, no_dropout_model, tmp_path / "ce", overrides[:1] + overrides[2:], cohort=False)
    for cid, (update, metrics) in alone.items():
        assert together[cid][1]["train_loss"] == pytest.approx(metrics["train_loss"], abs=1e-6)
        assert metrics["train_loss"] != pytest.approx(plain[cid][1]["train_loss"], abs=1e-4)
        for k in update:
            torch.testing.assert_close(together[cid][0][k], update[k], rtol=0, atol=1e-5)


def test_a_language_model_client_refuses_the_label_objectives() -> None:
    model = tiny_llama()
    trainer = LocalTrainer(model, TrainableState(model), ClientConfig(local_steps=1, loss="logit_calibration"))
    with pytest.raises(ValueError, match="clients.loss=logit_calibration needs class labels"):
        trainer.train(lm_data(), np.random.default_rng(0))
