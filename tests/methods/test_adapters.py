"""Bottleneck adapters and top-k layers on the tiny BERT."""

from pathlib import Path

import pytest
import torch

from fedpeft.errors import ModelError
from fedpeft.methods import METHODS
from fedpeft.methods.adapters import AdapterMethod
from fedpeft.methods.top_layers import TopLayersMethod
from fedpeft.model import load_sequence_classifier


def tiny(tiny_model_dir: Path) -> torch.nn.Module:
    return load_sequence_classifier(str(tiny_model_dir), ["neg", "pos"], seed=3, pooling="mean")[0].eval()


def batch() -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.tensor([[2, 7, 9, 3], [2, 12, 3, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
    }


@pytest.mark.parametrize("variant, per_layer", [("houlsby", 2), ("pfeiffer", 1)])
def test_adapters_start_as_identity_and_sit_where_the_variant_says(
    tiny_model_dir: Path, variant: str, per_layer: int
) -> None:
    base = tiny(tiny_model_dir)
    before = base(**batch()).logits
    model = METHODS.get(variant).apply(
        base, AdapterMethod(method=variant, reduction_factor=8), "sequence_classification"
    )
    torch.testing.assert_close(model(**batch()).logits, before)  # zero-initialised up-projection
    adapters = {
        n.split(".bottleneck_adapter")[0] for n, p in model.named_parameters() if p.requires_grad and "adapter" in n
    }
    assert len(adapters) == 2 * per_layer  # 2 layers in the tiny BERT
    assert all(n.endswith("output.dense") for n in adapters)
    down = model.get_submodule(f"{sorted(adapters)[0]}.bottleneck_adapter.down")
    assert (down.in_features, down.out_features) == (32, 4)


def test_adapter_targets_that_match_nothing_are_refused(tiny_model_dir: Path) -> None:
    cfg = AdapterMethod(method="houlsby", target_modules=["no_such_layer$"])
    with pytest.raises(ModelError, match="no module matches"):
        METHODS.get("houlsby").apply(tiny(tiny_model_dir), cfg, "sequence_classification")


def test_top_layers_trains_only_the_last_blocks_and_the_head(tiny_model_dir: Path) -> None:
    model = METHODS.get("top_layers").apply(tiny(tiny_model_dir), TopLayersMethod(k=1), "sequence_classification")
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("encoder.encoder.layer.1.", "classifier.")) for n in trained)
    assert any(n.startswith("classifier.") for n in trained)
    with pytest.raises(ModelError, match="only 2 blocks"):
        METHODS.get("top_layers").apply(tiny(tiny_model_dir), TopLayersMethod(k=3), "sequence_classification")
