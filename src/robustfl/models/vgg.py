"""VGG-9 of seed 004 ch. 5 (FedMA), Table 5.4."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models._shapes import check_fits, image_shape
from robustfl.models.base import MODELS


@MODELS.register("vgg9")
class VGG9(nn.Module):
    """Six 3×3 convolutions (stride 1, padding 1, with bias) and three FC layers, ReLU throughout, no BatchNorm:

    conv 32, conv 64, max-pool 2 · conv 128, conv 128, max-pool 2, dropout 0.05 · conv 256, conv 256,
    max-pool 2, dropout 0.1 · FC 512, FC 512, dropout 0.1, FC classes (Table 5.4; 4096 = 256·4·4 FC
    inputs for 32×32 images). 3,491,530 parameters on 3×32×32 inputs with 10 classes (Table 5.7's
    "original" column). The FC input is computed from ``input_shape`` so any image size divisible by 8 works.
    ``dropout=False`` removes the dropout layers (whose randomness ``vmap`` must be told about with
    ``randomness="different"``).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, dropout: bool = True) -> None:
        super().__init__()
        c, h, w = image_shape("vgg9", input_shape)
        h, w = h // 8, w // 8
        check_fits("vgg9", input_shape, h, w)

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=1, padding=1), nn.ReLU()]

        def drop(p: float) -> list[nn.Module]:
            return [nn.Dropout(p)] if dropout else []

        self.features = nn.Sequential(
            *conv(c, 32),
            *conv(32, 64),
            nn.MaxPool2d(2, 2),
            *conv(64, 128),
            *conv(128, 128),
            nn.MaxPool2d(2, 2),
            *drop(0.05),
            *conv(128, 256),
            *conv(256, 256),
            nn.MaxPool2d(2, 2),
            *drop(0.1),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * h * w, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            *drop(0.1),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
