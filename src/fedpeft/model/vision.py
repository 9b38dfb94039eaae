"""Image classifiers: the packaged ImageNet MobileNetV2 with a fresh head for the task's classes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fedpeft.errors import ModelError
from fedpeft.model.mobilenet import MobileNetV2


def load_image_classifier(source: str, num_labels: int, *, seed: int, width_mult: float = 1.0) -> nn.Module:
    """MobileNetV2 with the given weights file (torchvision layout, ``.pth`` or ``.safetensors``) or, for
    ``source="random"``, random weights; the classifier is new, seeded by ``seed``.

    Example:
        >>> model = load_image_classifier("random", 10, seed=0, width_mult=0.25)
        >>> model.classifier[1].out_features
        10
    """
    model = MobileNetV2(num_labels=1000, width_mult=width_mult)
    if source != "random":
        path = Path(source)
        if not path.is_file():
            raise ModelError(f"image model weights {source!r} not found (give a .pth / .safetensors file)")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:  # restricted unpickler: tensors and plain containers only, never arbitrary objects
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"{source}: not MobileNetV2 weights in torchvision's layout ({exc})") from None
    torch.manual_seed(seed)
    old_head = model.classifier[1]
    assert isinstance(old_head, nn.Linear)
    model.classifier[1] = nn.Linear(old_head.in_features, num_labels)
    model.num_labels = num_labels
    return model
