"""Every method x pooling on the tiny model: trains federated, exchanges only its tensors, saves and loads."""

from pathlib import Path

import pytest
import torch

import fedpeft
from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.evaluation import predict
from fedpeft.methods import METHODS
from fedpeft.model import load_sequence_classifier
from fedpeft.pipeline import codec

METHOD_OVERRIDES = {
    "lora": ["peft.method=lora", "peft.r=2"],
    "ia3": ["peft.method=ia3"],
    "vera": ["peft.method=vera", "peft.r=8"],
    "bitfit": ["peft.method=bitfit"],
    "layernorm": ["peft.method=layernorm"],
    "head": ["peft.method=head"],
    "full": ["peft.method=full"],
    "houlsby": ["peft.method=houlsby", "peft.reduction_factor=8"],
    "pfeiffer": ["peft.method=pfeiffer", "peft.reduction_factor=8"],
    "prompt": ["peft.method=prompt", "peft.num_virtual_tokens=4"],
    "prefix": ["peft.method=prefix", "peft.num_virtual_tokens=4"],
    "top_layers": ["peft.method=top_layers", "peft.k=1"],
    "sparse": ["peft.method=sparse", "peft.density=0.05"],
    "loha": ["peft.method=loha", "peft.options.r=2"],
    "lokr": ["peft.method=lokr", "peft.options.r=2"],
    "oft": ["peft.method=oft"],
    "fourierft": ["peft.method=fourierft", "peft.options.n_frequency=16"],
    "hra": ["peft.method=hra"],
    "p_tuning": ["peft.method=p_tuning", "peft.options.num_virtual_tokens=4"],
}


def test_matrix_covers_every_registered_method() -> None:
    assert set(METHOD_OVERRIDES) == set(METHODS.names())


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("method", sorted(METHOD_OVERRIDES))
def test_method_trains_federated_and_round_trips(
    tiny_config: dict, tiny_model_dir: Path, method: str, pooling: str
) -> None:
    overrides = [*METHOD_OVERRIDES[method], f"model.pooling={pooling}", "rounds=1", "clients.per_round=1"]
    cfg = load_config(tiny_config, overrides)
    setup = build(cfg)
    start = setup.trainable.snapshot()
    frozen = {n for n, p in setup.model.named_parameters() if not p.requires_grad}
    summary = fedpeft.run(cfg, progress=False)
    # only trainable tensors travel: one client update = one payload of exactly the trainable state
    assert summary["ledger"]["bytes_up"] == len(codec.encode(start))
    assert set(start).isdisjoint(frozen)
    if method != "full":
        assert summary["ledger"]["trainable_params"] < summary["ledger"]["total_params"]
    # save / load: a fresh base plus the saved adapter reproduces the run's final test loss
    base, _ = load_sequence_classifier(str(tiny_model_dir), ["neg", "pos"], seed=77, pooling=pooling)
    model = METHODS.get(method).load(base, Path(summary["run_dir"]) / "adapter")
    pred = predict(model, setup.test_data, 64)
    assert abs(pred.losses.mean() - summary["final"]["loss"]) < 1e-5


def test_bitfit_is_refused_on_a_model_without_biases() -> None:
    from fedpeft.errors import ModelError

    model = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    with pytest.raises(ModelError, match="no bias parameters"):
        METHODS.get("bitfit").apply(model, None, "sequence_classification")
