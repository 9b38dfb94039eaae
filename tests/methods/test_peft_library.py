"""Methods passed through to the peft library: options reach peft, bad ones are named."""

from pathlib import Path

import pytest

from fedpeft.errors import ModelError
from fedpeft.methods import METHODS
from fedpeft.methods.peft_library import PeftLibraryMethod
from fedpeft.model import TrainableState, load_sequence_classifier


def test_options_reach_peft_and_unknown_ones_are_named(tiny_model_dir: Path) -> None:
    def model():  # type: ignore[no-untyped-def]
        return load_sequence_classifier(str(tiny_model_dir), ["a", "b"], seed=0, pooling="cls")[0]

    small = METHODS.get("loha").apply(
        model(), PeftLibraryMethod(method="loha", options={"r": 2}), "sequence_classification"
    )
    large = METHODS.get("loha").apply(
        model(), PeftLibraryMethod(method="loha", options={"r": 4}), "sequence_classification"
    )
    head = 32 * 2 + 2  # the new classifier, trained beside the adapter
    assert TrainableState(large).numel() - head == 2 * (TrainableState(small).numel() - head)
    with pytest.raises(ModelError, match=r"\['rank'\] are not options of peft's LoHaConfig; allowed: .*\br\b"):
        METHODS.get("loha").apply(
            model(), PeftLibraryMethod(method="loha", options={"rank": 2}), "sequence_classification"
        )
