"""MobileNetV2 in plain PyTorch, with torchvision's parameter names so its ImageNet weights load as they are.

torchvision does not import beside the CPU torch build used here, and an image model needs nothing from it
but this architecture (Sandler et al., 2018).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

# (expansion t, output channels c, repeats n, first stride s), as in the paper and torchvision
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.residual = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, kernel=1)] if expand != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 image classifier: ``forward(pixel_values, labels)`` returns loss and logits.

    BatchNorm layers keep their pretrained statistics during training (they stay in eval mode): the
    statistics are not parameters, so they would otherwise drift on the shared model between simulated
    clients without ever being aggregated.

    Example:
        >>> net = MobileNetV2(num_labels=10, width_mult=0.25)
        >>> net(pixel_values=torch.zeros(2, 3, 32, 32)).logits.shape
        torch.Size([2, 10])
    """

    def __init__(self, num_labels: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        cin = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU(cin, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_labels))
        self.num_labels = num_labels

    def train(self, mode: bool = True) -> MobileNetV2:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: object
    ) -> ImageClassifierOutput:
        pooled = nn.functional.adaptive_avg_pool2d(self.features(pixel_values), 1).flatten(1)
        logits = self.classifier(pooled)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


def pointwise_convs(model: nn.Module) -> list[str]:
    """Names of the 1x1, ungrouped convolutions: where LoRA and (IA)^3 apply on a CNN (peft refuses
    depthwise convolutions unless the rank divides the groups)."""
    return [
        n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
    ]
