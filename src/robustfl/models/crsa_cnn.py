"""The CNN of seed 001 (C-RSA, §5): two convolutional and three fully connected layers."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models._shapes import check_fits, conv_out, image_shape
from robustfl.models.base import MODELS


@MODELS.register("crsa-cnn")
class CRSACNN(nn.Module):
    """conv 16@3×3 → ReLU → max-pool 2 → conv 32@3×3 → ReLU → max-pool 2 → FC 256 → ReLU → FC 256 → ReLU → FC classes.

    Seed 001 states only "3 fully connected layers and 2 convolutional layers, with 368,052 parameters"
    for 32×32×3 CIFAR-10 inputs. No common layout gives that count exactly, so we take a plain one:
    unpadded 3×3 convolutions doubling the channels (16, 32), 2×2 max-pooling, and two hidden FC layers
    of 256. On 3×32×32 inputs with 10 classes it has **368,618** parameters, 566 (0.15%) more than the
    paper; among layouts built from standard widths (channel pairs such as 6/16, 16/32, 32/64, 20/50,
    FC pairs such as 120/84, 256/128, 384/192, 256/256; 3×3 or 5×5 kernels, valid or same padding)
    it is the closest one with power-of-two widths.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        c, h, w = image_shape("crsa-cnn", input_shape)
        h, w = conv_out(h, 3) // 2, conv_out(w, 3) // 2
        h, w = conv_out(h, 3) // 2, conv_out(w, 3) // 2
        check_fits("crsa-cnn", input_shape, h, w)
        self.features = nn.Sequential(
            nn.Conv2d(c, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * h * w, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
