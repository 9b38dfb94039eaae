"""Images as model inputs: resized once to the model's input size (kept as uint8), normalised per batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedpeft.data.dataset import ImageDataset

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # ImageNet statistics, as the backbone was trained
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class PixelDataset:
    """Resized uint8 images (N x 3 x S x S) and labels; ``batch`` gives normalised float ``pixel_values``.

    Example:
        >>> ds = to_pixels(ImageDataset(np.zeros((2, 8, 8), np.uint8), np.array([0, 1]), ["a", "b"]), size=16)
        >>> ds.batch(np.array([1]))["pixel_values"].shape
        torch.Size([1, 3, 16, 16])
    """

    pixels: torch.Tensor
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long)
        x = self.pixels[index].float().div_(255.0)
        return {"pixel_values": (x - MEAN) / STD, "labels": torch.as_tensor(self.labels[idx], dtype=torch.long)}

    def subset(self, idx: np.ndarray) -> PixelDataset:
        return PixelDataset(self.pixels[torch.as_tensor(idx, dtype=torch.long)], self.labels[idx])


def to_pixels(ds: ImageDataset, size: int, chunk: int = 4096) -> PixelDataset:
    """Resize every image to ``size`` x ``size`` (bilinear), grey to three channels, in chunks."""
    images = ds.images if ds.images.ndim == 4 else ds.images[..., None]
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk])).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out[start : start + chunk] = x.expand(-1, 3, -1, -1).round().clamp_(0, 255).to(torch.uint8)
    return PixelDataset(out, ds.labels.copy())
