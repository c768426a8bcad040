"""VGG-19 with BatchNorm for CIFAR-10 (Simonyan and Zisserman, 2015), as in seed 004 Table 4.11."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models._shapes import check_fits, image_shape
from robustfl.models.base import MODELS

# 3x3 convolutions (output channels) and 2x2 max-pools ("M"), Table 4.11
LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M")
LAYOUT += (512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


@MODELS.register("vgg19-bn", "vgg19")
class VGG19BN(nn.Module):
    """Sixteen 3×3 convolutions (stride 1, padding 1, no bias), each followed by BatchNorm and ReLU,
    five 2×2 max-pools, then FC 512 → ReLU → FC 512 → ReLU → FC classes (Table 4.11).

    **20,560,330** parameters on 3×32×32 inputs with 10 classes (Table 4.4): the convolutions carry
    no bias (a bias before BatchNorm is redundant; with one the count would be 5,504 higher). The FC
    input is ``512 · (H/32) · (W/32)``. Has BatchNorm: the engine trains it on its loop path.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        c, h, w = image_shape("vgg19-bn", input_shape)
        h, w = h // 32, w // 32
        check_fits("vgg19-bn", input_shape, h, w)
        layers: list[nn.Module] = []
        for item in LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            assert isinstance(item, int)
            layers += [nn.Conv2d(c, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
            c = item
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * h * w, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
