"""Image classification end to end: the packaged ImageNet MobileNetV2 on small slices of digits and MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest

import fedpeft
from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.errors import ConfigError

pytestmark = pytest.mark.integration

DIGITS = Path(__file__).parents[2] / "configs" / "digits.yaml"


def test_digits_config_learns_from_the_pretrained_backbone(tmp_path: Path) -> None:
    summary = fedpeft.run(
        DIGITS,
        [
            "rounds=3",
            "data.max_train_examples=400",
            "clients.per_round=4",
            "threads=1",
            "partition.method=iid",
            f"output.dir={tmp_path}",
            "output.plot=false",
        ],
        progress=False,
    )
    assert summary["initial"]["accuracy"] < 0.2  # a new 10-way head
    assert summary["final"]["accuracy"] > max(0.35, 2.5 * summary["data"]["majority_baseline"])
    assert summary["model"]["name"] == "mobilenet_v2" and summary["ledger"]["rejected_updates"] == 0
    adapter = Path(summary["run_dir"]) / "adapter"
    assert (adapter / "fedpeft.json").read_text().count("image_classification") == 1


def test_mnist_keeps_its_own_test_set_and_resizes_to_the_configured_side() -> None:
    cfg = load_config(
        {
            "data": {"dataset": "mnist", "image_size": 40, "max_train_examples": 500, "max_test_examples": 100},
            "model": {"name": "mobilenet_v2"},
            "partition": {"method": "dirichlet", "num_clients": 5},
        }
    )
    setup = build(cfg)
    assert len(setup.train) == 500 and len(setup.test) == 100 and setup.task == "image_classification"
    batch = setup.test_data.batch(setup.partition.indices[0][:2] * 0)
    assert batch["pixel_values"].shape[1:] == (3, 40, 40)


@pytest.mark.parametrize(
    "data, model, fix", [("digits", "minilm", "mobilenet_v2"), ("rotten_tomatoes", "mobilenet_v2", "minilm")]
)
def test_a_model_that_cannot_read_the_data_is_refused(data: str, model: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=f"set model.name={fix}"):
        build(load_config({"data": {"dataset": data}, "model": {"name": model}}))
