"""A plug-in is one module found by registration: a toy PEFT method and a toy transform, written to a temporary
file and imported from there, validate in a run config and run a real federated round on the tiny BERT."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file

import fedpeft
from fedpeft.cli import main
from fedpeft.config.load import load_config
from fedpeft.config.plugins import METHOD_CONFIGS, STRATEGY_CONFIGS, TRANSFORM_CONFIGS
from fedpeft.errors import ConfigError
from fedpeft.methods import METHODS
from fedpeft.model import load_sequence_classifier
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.strategy import STRATEGIES

TOY = '''
"""Toy plug-ins: a scalar gate on every Linear layer's output (the only trainable tensors) and `negate`."""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from fedpeft.client.plugins import ClientPlugin, FitContext
from fedpeft.config.compression import TransformConfig
from fedpeft.config.strategies import StrategySection
from fedpeft.strategy.base import STRATEGIES, Strategy, StrategySpec, step, weighted_mean
from fedpeft.config.methods import MethodConfig
from fedpeft.config.plugins import METHOD_CONFIGS, STRATEGY_CONFIGS, TRANSFORM_CONFIGS
from fedpeft.methods.own_format import load_own, save_trainable
from fedpeft.methods.registry import MethodSpec, register
from fedpeft.model.state import TensorDict
from fedpeft.pipeline.transforms.base import EncodeContext, PerTensor, Shape, Spec


@METHOD_CONFIGS.add
class GateMethod(MethodConfig):
    """Gates: one trainable scalar per Linear layer, multiplying its output."""

    method: Literal["toy_gate"] = "toy_gate"
    init: float = 1.0


def _gated(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
    return output * module.toy_gate


def apply_gates(model: nn.Module, cfg: GateMethod, task: str) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [m for m in model.modules() if isinstance(m, nn.Linear)]:
        module.register_parameter("toy_gate", nn.Parameter(torch.full((1,), cfg.init)))
        module.register_forward_hook(_gated)
    return model


GATE = register(MethodSpec("toy_gate", "additive", apply_gates, save_trainable, load_own))


class Negate(PerTensor):
    def describe(self) -> str:
        return "negate"

    def part_spec(self, shape: Shape, dtype: torch.dtype) -> Spec:
        return {"n": (shape, dtype)}

    def encode_one(self, name: str, x: torch.Tensor, ctx: EncodeContext) -> TensorDict:
        return {"n": -x}

    def decode_one(self, name: str, sub: TensorDict, shape: Shape, seed: int) -> torch.Tensor:
        return -sub["n"]


@TRANSFORM_CONFIGS.add
class NegateTransform(TransformConfig):
    """Negate: every value travels with its sign flipped (same bytes, undone on receipt)."""

    name: Literal["toy_negate"] = "toy_negate"

    def build(self) -> Negate:
        return Negate()


@STRATEGY_CONFIGS.add
class HalfStepStrategy(StrategySection):
    """Half-step FedAvg: the weighted mean of the updates, applied at half the server learning rate."""

    client_half: ClassVar[bool] = True
    secure_aggregation: ClassVar[bool] = False

    name: Literal["toy_half"] = "toy_half"


class CountSteps(ClientPlugin):
    """The client half: report the local steps taken beside the update."""

    def finish(self, ctx: FitContext) -> None:
        ctx.metrics["toy_steps"] = float(ctx.steps)


class HalfStep(Strategy):
    seen: list[float] = []

    def aggregate(self, round_, state, updates):
        HalfStep.seen = [u.metrics["toy_steps"] for u in updates]
        return step(state, weighted_mean(updates), 0.5 * self.server_lr)

    def client_plugins(self):
        return [CountSteps(), *super().client_plugins()]


STRATEGIES.register("toy_half")(StrategySpec(lambda s, per_round, _model: HalfStep(per_round, s.server_lr),
                                             HalfStepStrategy))
'''


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[ModuleType]:
    path = tmp_path / "toy_plugins.py"
    path.write_text(textwrap.dedent(TOY))
    spec = importlib.util.spec_from_file_location("toy_plugins", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_plugins"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("toy_plugins", None)
        for registry, name in (
            (METHODS, "toy_gate"),
            (METHOD_CONFIGS, "toy_gate"),
            (TRANSFORM_CONFIGS, "toy_negate"),
            (STRATEGIES, "toy_half"),
            (STRATEGY_CONFIGS, "toy_half"),
        ):
            if name in registry:
                registry.unregister(name)


def test_toy_plugins_validate_and_run_a_federated_round(toy: ModuleType, tiny_config: dict) -> None:
    # Prepare
    config = {
        **tiny_config,
        "rounds": 1,
        "peft": {"method": "toy_gate", "init": 0.5},
        "compression": {"uplink": [{"name": "toy_negate"}]},
    }
    cfg = load_config(config)
    assert isinstance(cfg.peft, toy.GateMethod) and cfg.peft.init == 0.5
    assert load_config(cfg.model_dump(mode="json")) == cfg  # dumps keep the plug-in's own fields
    base, _tokenizer = load_sequence_classifier(str(tiny_config["model"]["name"]), ["0", "1"], seed=0)
    model = METHODS.get("toy_gate").apply(base, cfg.peft, "sequence_classification")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())

    # Execute
    summary = fedpeft.run(config, progress=False)
    plain = fedpeft.run({**config, "compression": {}}, progress=False)

    # Assert
    assert trainable and all(n.endswith("toy_gate") for n in trainable) and len(trainable) == linears
    saved = load_file(str(Path(summary["run_dir"]) / "adapter" / "adapter.safetensors"))
    assert set(saved) == trainable
    assert any(float(t) != 0.5 for t in saved.values())  # the round trained the gates
    assert summary["compression"]["uplink"] == "negate"
    unsent = load_file(str(Path(plain["run_dir"]) / "adapter" / "adapter.safetensors"))
    assert all(torch.equal(saved[n], unsent[n]) for n in saved)  # negate is lossless: same model as no transform


def test_toy_transform_round_trips_with_the_sign_flipped_on_the_wire(toy: ModuleType) -> None:
    update = {"w": torch.tensor([1.5, -2.0, 0.0, 3.25])}
    pipe = UpdatePipeline.from_config([TRANSFORM_CONFIGS.validate({"name": "toy_negate"})])

    payload, _ = pipe.encode(update, seed=3)
    back = pipe.decode(payload, {"w": ((4,), torch.float32)})

    assert torch.equal(back["w"], update["w"])
    assert torch.equal(pipe.transforms[0].encode(update, None)["w#n"], -update["w"])
    assert len(payload) - len(UpdatePipeline().encode(update)[0]) < 200  # same tensor bytes plus a header


def test_unregistered_plugins_are_refused_with_the_choices(toy: ModuleType) -> None:
    METHODS.unregister("toy_gate")
    METHOD_CONFIGS.remove(toy.GateMethod)
    with pytest.raises(ConfigError, match="unknown PEFT method 'toy_gate'; choose one of .*lora"):
        load_config({"peft": {"method": "toy_gate"}})
    with pytest.raises(ConfigError, match=r"compression\.uplink\.0\.bits: unknown key; allowed keys here: name"):
        load_config({"compression": {"uplink": [{"name": "toy_negate", "bits": 3}]}})


def test_toy_strategy_runs_with_its_client_half_and_its_flags_are_read(
    toy: ModuleType, tiny_config: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    config = {**tiny_config, "rounds": 1, "output": {**tiny_config.get("output", {}), "save_adapter": True}}

    # Execute
    half = fedpeft.run({**config, "strategy": {"name": "toy_half"}}, progress=False)
    fedavg = fedpeft.run({**config, "strategy": {"name": "fedavg", "server_lr": 0.5}}, progress=False)
    main(["strategies"])

    # Assert
    assert half["strategy"]["name"] == "toy_half" and toy.HalfStep.seen  # its client half ran on every client
    assert all(s == tiny_config["clients"]["local_steps"] for s in toy.HalfStep.seen)
    ours, theirs = (
        load_file(str(Path(s["run_dir"]) / "adapter" / "adapter_model.safetensors")) for s in (half, fedavg)
    )
    assert all(torch.allclose(ours[n], theirs[n], atol=1e-6) for n in ours)  # half a step = FedAvg at server lr 0.5
    assert "toy_half" in capsys.readouterr().out  # listed by `fedpeft strategies`
    with pytest.raises(ConfigError, match="toy_half .*cannot run; pick one of fedavg"):  # its flag is read ...
        load_config({"strategy": {"name": "toy_half"}, "privacy": {"secure_aggregation": {"enabled": True}}})
    with pytest.raises(ConfigError) as refused:  # ... and it is not offered where it cannot serve
        load_config({"strategy": {"name": "scaffold"}, "privacy": {"secure_aggregation": {"enabled": True}}})
    assert "toy_half" not in str(refused.value) and "fedavg" in str(refused.value)
