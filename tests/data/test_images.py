"""Images as model inputs: resized once, grey to three channels, normalised like ImageNet per batch."""

from __future__ import annotations

import numpy as np
import torch

from fedpeft.data.dataset import ImageDataset
from fedpeft.data.images import MEAN, STD, to_pixels


def test_grey_images_become_three_equal_normalised_channels() -> None:
    images = np.stack([np.full((8, 8), v, np.uint8) for v in (0, 128, 255)])
    px = to_pixels(ImageDataset(images, np.array([0, 1, 2]), ["a", "b", "c"]), size=20, chunk=2)
    batch = px.batch(np.array([2, 1]))
    x = batch["pixel_values"]
    assert x.shape == (2, 3, 20, 20) and batch["labels"].tolist() == [2, 1]
    raw = x * STD + MEAN  # undo the normalisation: constant images stay constant through resizing
    assert torch.allclose(raw[0], torch.ones(3, 20, 20), atol=1e-6)
    assert torch.allclose(raw[1], torch.full((3, 20, 20), 128 / 255), atol=1e-6)
    assert px.subset(np.array([0])).pixels.shape == (1, 3, 20, 20)


def test_resizing_keeps_where_the_ink_is() -> None:
    img = np.zeros((1, 8, 8), np.uint8)
    img[0, :, :4] = 255  # left half bright
    px = to_pixels(ImageDataset(img, np.array([0]), ["a"]), size=32).pixels[0, 0].float()
    assert px[:, :14].min() > 250 and px[:, 18:].max() < 5
