"""Sample-level DP-SGD: Poisson batches, exact per-example gradients, clipping, noise and per-client accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from pydantic import TypeAdapter
from transformers import BertConfig, BertForSequenceClassification

import fedpeft
from fedpeft.client import LocalTrainer
from fedpeft.config import load_config
from fedpeft.config.methods import PeftMethodConfig
from fedpeft.config.schema import ClientConfig
from fedpeft.data import TokenizedDataset
from fedpeft.errors import ConfigError
from fedpeft.methods import METHODS
from fedpeft.model import TrainableState
from fedpeft.privacy.dp_sgd import DPStep, SampleLevelDP, epsilon_of, poisson_batches


def tiny_classifier(method: str) -> torch.nn.Module:
    cfg = BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    extra = {"target_modules": ["query", "value"]} if method == "lora" else {}
    peft_cfg = TypeAdapter(PeftMethodConfig).validate_python({"method": method, **extra})
    return METHODS.get(method).apply(BertForSequenceClassification(cfg), peft_cfg, "sequence_classification")


def toy_data(n: int = 24, seed: int = 0) -> TokenizedDataset:
    rng = np.random.default_rng(seed)
    rows = [list(rng.integers(5, 30, size=int(rng.integers(4, 10)))) for _ in range(n)]
    return TokenizedDataset([[int(t) for t in r] for r in rows], rng.integers(0, 2, size=n), pad_id=0)


def dp(**kwargs) -> SampleLevelDP:  # type: ignore[no-untyped-def]
    return SampleLevelDP(**{"max_grad_norm": 1.0, "noise_multiplier": 0.0, "delta": 1e-5, "rounds": 1, **kwargs})


def test_poisson_batches_include_each_example_at_the_sample_rate() -> None:
    sizes = [len(b) for b in poisson_batches(200, 20, 2000, np.random.default_rng(0))]
    assert np.mean(sizes) == pytest.approx(20, rel=0.02) and min(sizes) < 20 < max(sizes)
    again = [len(b) for b in poisson_batches(200, 20, 2000, np.random.default_rng(0))]
    assert sizes == again


def test_epsilon_composes_rounds_like_opacus() -> None:
    history = torch.tensor([[1.1, 0.25, 8.0], [1.1, 0.25, 8.0], [0.9, 0.5, 4.0]], dtype=torch.float64)
    acc = RDPAccountant()
    for z, q, steps in [(1.1, 0.25, 16), (0.9, 0.5, 4)]:
        for _ in range(steps):
            acc.step(noise_multiplier=z, sample_rate=q)
    assert epsilon_of(history, 1e-5) == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)
    personal: dict[str, torch.Tensor] = {}
    sdp = dp(noise_multiplier=1.1)
    sdp.account(personal, DPStep(1.1, 0.25, 16))
    assert sdp.account(personal, DPStep(0.9, 0.5, 4))["dp_epsilon"] == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)
    assert personal[SampleLevelDP.HISTORY].shape == (2, 3)


def test_target_epsilon_bounds_a_client_in_every_round() -> None:
    sdp = dp(noise_multiplier=None, target_epsilon=3.0, rounds=5)
    z = sdp.noise_for(0.1, 20)
    full = torch.tensor([[z, 0.1, 20.0]] * 5, dtype=torch.float64)
    assert 2.7 < epsilon_of(full, 1e-5) <= 3.0


@pytest.mark.parametrize(
    "method, path",
    [
        ("lora", "opacus hooks"),
        ("bitfit", "opacus hooks"),
        ("ia3", "one backward per example"),
        ("vera", "one backward per example"),
    ],
)
def test_per_example_gradients_are_exact_on_either_path(method: str, path: str) -> None:
    model = tiny_classifier(method)
    params = TrainableState(model).params
    data = toy_data()
    batch = data.batch(np.arange(6))
    sdp = dp()
    assert sdp.prepare(model, params, batch) == path
    with sdp.hooks():
        sdp.backward(lambda b: model(**b).loss, batch, 6, params)
    samples = {n: p.grad_sample.clone() for n, p in params.items()}  # type: ignore[attr-defined]
    for p in params.values():
        p.grad, p.grad_sample = None, None  # type: ignore[attr-defined]
    for i in range(6):  # the reference: each example alone
        model(**data.batch(np.array([i]))).loss.backward()
        for name, p in params.items():
            ref = torch.zeros_like(p) if p.grad is None else p.grad
            assert torch.allclose(samples[name][i], ref, atol=1e-6), (name, i)
            p.grad = None


def test_full_fine_tuning_falls_back_because_position_embeddings_are_shared() -> None:
    model = tiny_classifier("full")  # Opacus's embedding sampler assumes a batch dim the position ids lack
    assert dp().prepare(model, TrainableState(model).params, toy_data().batch(np.arange(4))) != "opacus hooks"


def test_every_step_moves_the_model_by_at_most_the_clipped_mean() -> None:
    model = tiny_classifier("lora")
    state = TrainableState(model)
    data = toy_data(40)
    trainer = LocalTrainer(model, state, ClientConfig(optimizer="sgd", lr=1.0, batch_size=10, local_steps=1))
    trainer.dp = dp(max_grad_norm=1e-3)
    trainer.dp.prepare(model, state.params, data.batch(np.arange(4)))
    for seed in range(5):
        before = {n: p.detach().clone() for n, p in state.params.items()}
        result, _ = trainer.train(data, np.random.default_rng(seed))
        moved = torch.cat([(p.detach() - before[n]).flatten() for n, p in state.params.items()]).norm()
        assert result.dp == DPStep(0.0, 0.25, 1)
        assert 0 < moved <= 1e-3 * result.samples / 10 * (1 + 1e-4)


def test_a_trainable_tensor_the_forward_skips_gets_zero_per_example_gradients() -> None:
    model = tiny_classifier("lora")
    model.unused = torch.nn.Linear(3, 3)  # trainable, never called (like a pooler a mean-pooling head skips)
    state = TrainableState(model)
    assert any(n.startswith("unused") for n in state.params)
    data = toy_data(40)
    trainer = LocalTrainer(model, state, ClientConfig(optimizer="sgd", lr=1.0, batch_size=10, local_steps=2))
    trainer.dp = dp(max_grad_norm=1.0)
    assert trainer.dp.prepare(model, state.params, data.batch(np.arange(4))) == "opacus hooks"
    before = model.unused.weight.detach().clone()
    result, _ = trainer.train(data, np.random.default_rng(0))
    assert result.steps == 2 and torch.equal(model.unused.weight, before)


def test_noise_has_std_z_clip_over_the_expected_batch() -> None:
    model = tiny_classifier("bitfit")
    state = TrainableState(model)
    data = toy_data(40)
    trainer = LocalTrainer(model, state, ClientConfig(optimizer="sgd", lr=1.0, batch_size=10, local_steps=1))
    trainer.dp = dp(max_grad_norm=1e-6, noise_multiplier=3.0)  # gradients clipped to nothing: noise only
    trainer.dp.prepare(model, state.params, data.batch(np.arange(4)))
    before = {n: p.detach().clone() for n, p in state.params.items()}
    trainer.train(data, np.random.default_rng(0))
    moved = torch.cat([(p.detach() - before[n]).flatten() for n, p in state.params.items()])
    assert float(moved.std()) == pytest.approx(3.0 * 1e-6 / 10, rel=0.1)


def test_a_run_reports_each_clients_epsilon_and_repeats_exactly(tiny_config: dict) -> None:
    args = ["privacy.dp_sgd.enabled=true", "privacy.dp_sgd.target_epsilon=5", "rounds=3"]
    first = fedpeft.run(tiny_config, args, progress=False)
    sgd = first["dp_sgd"]
    assert sgd["per_example_gradients"] == "opacus hooks"
    assert 0 < sgd["median_client_epsilon"] <= sgd["max_client_epsilon"] <= 5.0
    assert "sample-level DP-SGD" in fedpeft.report.summary_text(first)
    tiny_config["output"]["dir"] = tiny_config["output"]["dir"] + "-again"
    second = fedpeft.run(tiny_config, args, progress=False)
    assert second["final"] == first["final"] and second["dp_sgd"] == sgd


def test_dp_sgd_composes_with_client_level_dp_and_compression(tiny_config: dict) -> None:
    tiny_config["peft"] = {"method": "ia3"}
    summary = fedpeft.run(
        tiny_config,
        [
            "privacy.dp_sgd.enabled=true",
            "privacy.dp_sgd.noise_multiplier=1.0",
            "privacy.client_dp=central",
            "privacy.noise_multiplier=0.5",
            "compression.uplink=[{name: int8}]",
        ],
        progress=False,
    )
    assert summary["ledger"]["rejected_updates"] == 0
    assert summary["dp_sgd"]["per_example_gradients"] == "one backward per example"
    assert summary["privacy"]["epsilon"] > 0 and summary["dp_sgd"]["max_client_epsilon"] > 0


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["privacy.dp_sgd.enabled=true"], "exactly one of"),
        (["privacy.dp_sgd.enabled=true", "privacy.dp_sgd.noise_multiplier=1", "peft.method=sparse"], "raw gradients"),
    ],
)
def test_inconsistent_dp_sgd_settings_are_refused(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config({}, overrides)


def test_local_training_under_dp_sgd_draws_poisson_batches_at_the_accounted_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trainer's batches are what the accountant assumes: each example independently at rate B / n, so
    batch sizes vary (Binomial(n, B / n)), and the step record carries that rate and the steps taken."""
    model = tiny_classifier("lora")
    state = TrainableState(model)
    sgd = dp()
    data = toy_data(200)
    sgd.prepare(model, state.params, data.batch(np.arange(4)))
    sizes: list[int] = []
    backward = SampleLevelDP.backward
    monkeypatch.setattr(
        SampleLevelDP, "backward", lambda self, f, b, size, p: sizes.append(size) or backward(self, f, b, size, p)
    )
    trainer = LocalTrainer(model, state, ClientConfig(local_steps=300, batch_size=10, lr=1e-4), dp=sgd)
    result, _ = trainer.train(data, np.random.default_rng(0))
    assert result.dp == DPStep(0.0, 10 / 200, 300) and len(sizes) == 300
    assert np.mean(sizes) == pytest.approx(10, rel=0.05)
    assert np.var(sizes) == pytest.approx(200 * 0.05 * 0.95, rel=0.2)  # not a fixed batch size
