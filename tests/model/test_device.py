"""Devices, precision and gradient checkpointing: resolution, refusals, and training that still matches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import fedpeft
from fedpeft.build import build_setup
from fedpeft.client.trainer import LocalTrainer
from fedpeft.config import load_config
from fedpeft.config.schema import ClientConfig, RunConfig
from fedpeft.data.batching import CausalLMDataset
from fedpeft.errors import ConfigError
from fedpeft.model import device as devices
from fedpeft.model.state import TrainableState


def tiny_llama(checkpointing: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=40,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            pad_token_id=0,
        )
    )
    model.model.embed_tokens.requires_grad_(False)  # a frozen base under the trainable blocks, as with PEFT
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def lm_data() -> CausalLMDataset:
    rng = np.random.default_rng(0)
    return CausalLMDataset([list(rng.integers(5, 39, size=12)) for _ in range(16)], np.full(16, 2), pad_id=0)


def train(model: torch.nn.Module, precision: str = "fp32") -> dict[str, torch.Tensor]:
    state = TrainableState(model)
    cfg = ClientConfig(local_steps=3, batch_size=4, lr=0.01)
    LocalTrainer(model, state, cfg, precision=precision).train(lm_data(), np.random.default_rng(0))
    return state.snapshot()


def test_auto_is_the_cpu_here_and_cuda_is_refused_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "accelerator", lambda: None)
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA device.*device=auto or cpu"):
        devices.resolve_device("cuda:1")
    with pytest.raises(ConfigError, match="use auto, cpu, cuda"):
        devices.resolve_device("gpu")
    assert "no accelerator found" in devices.describe(torch.device("cpu"))


def test_auto_picks_the_accelerator_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "accelerator", lambda: "cuda")
    assert devices.resolve_device("auto") == torch.device("cuda")


def test_config_refuses_bad_devices_and_fp16_with_dp_sgd() -> None:
    assert RunConfig.model_validate({"device": "cuda:1", "precision": "bf16"}).device == "cuda:1"
    with pytest.raises(ValueError, match="device"):
        RunConfig.model_validate({"device": "tpu"})
    with pytest.raises(ValueError, match="precision=fp16.*bf16 or fp32"):
        RunConfig.model_validate(
            {"precision": "fp16", "privacy": {"dp_sgd": {"enabled": True, "noise_multiplier": 1.0}}}
        )


def test_gradient_checkpointing_gives_the_same_training() -> None:
    plain, checkpointed = train(tiny_llama()), train(tiny_llama(checkpointing=True))
    assert plain.keys() == checkpointed.keys()
    for name, value in plain.items():
        torch.testing.assert_close(checkpointed[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32_and_keeps_fp32_tensors(precision: str) -> None:
    start = TrainableState(tiny_llama()).snapshot()
    full, mixed = train(tiny_llama()), train(tiny_llama(), precision)
    moved = sum(float((full[n] - start[n]).norm()) for n in start)
    off = sum(float((mixed[n] - full[n]).norm()) for n in start)
    assert all(t.dtype == torch.float32 for t in mixed.values())
    assert moved > 0 and off < 0.2 * moved  # the same steps, in lower precision
    assert any(not torch.equal(mixed[n], full[n]) for n in start)  # autocast really ran


def test_a_half_precision_base_trains_and_evaluates_close_to_fp32(tiny_config: dict) -> None:
    half = ["precision=bf16", "model.base_dtype=bf16"]
    setup = build_setup(load_config(tiny_config, half))
    frozen = [
        p
        for m in setup.model.modules()
        if isinstance(m, torch.nn.Linear)
        for p in m.parameters()
        if not p.requires_grad
    ]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)  # the base's matrices are halved
    assert all(p.dtype == torch.float32 for p in setup.trainable.params.values())  # the adapters are not
    assert all(m.weight.dtype == torch.float32 for m in setup.model.modules() if isinstance(m, torch.nn.LayerNorm))
    full = fedpeft.run(tiny_config, ["precision=bf16"], progress=False)
    halved = fedpeft.run(tiny_config, [*half, "output.dir=" + tiny_config["output"]["dir"] + "-half"], progress=False)
    assert halved["final"]["loss"] == pytest.approx(full["final"]["loss"], rel=0.05)
    assert halved["final"]["accuracy"] == pytest.approx(full["final"]["accuracy"], abs=0.1)


def test_a_half_base_needs_its_precision_and_stays_fp32_where_it_is_unsafe() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert devices.base_dtype("auto", "bf16", gpu) == torch.bfloat16  # auto halves it on an accelerator
    assert devices.base_dtype("auto", "bf16", cpu) == torch.float32  # not on the CPU (no bf16 speed-up here)
    assert devices.base_dtype("auto", "fp32", gpu) == torch.float32
    assert devices.base_dtype("auto", "fp16", gpu, refused=True) == torch.float32
    with pytest.raises(ConfigError, match="set precision=bf16"):
        load_config({}, ["model.base_dtype=bf16"])
    dp_sgd = "privacy.dp_sgd.enabled=true privacy.dp_sgd.noise_multiplier=1.0"
    for bad, why in (("strategy.name=flora", "FLoRA merges"), (dp_sgd, "DP-SGD")):
        with pytest.raises(ConfigError, match=why):
            load_config({}, ["precision=bf16", "model.base_dtype=bf16", *bad.split()])
