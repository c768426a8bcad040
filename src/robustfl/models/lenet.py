"""LeNet-5 (LeCun et al., 1998), the CNN of seed 000's Fashion-MNIST experiments and seed 004 ch. 5/6."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models._shapes import check_fits, conv_out, image_shape
from robustfl.models.base import MODELS


@MODELS.register("lenet")
class LeNet(nn.Module):
    """LeNet-5 with ReLU and max-pooling, sized from the input.

    Layout: conv 6@5×5 (``padding``, default 2 so a 28×28 digit keeps its size as in the original
    32×32 input) → ReLU → max-pool 2 → conv 16@5×5 → ReLU → max-pool 2 → FC 120 → ReLU → FC 84 →
    ReLU → FC ``num_classes``. The first FC layer's width is computed from ``input_shape``, so the
    same model runs on 1×28×28 (61,706 parameters for 10 classes) and 3×32×32 (83,126) inputs.
    ReLU/max-pool rather than the original tanh/average-pool: the choice of current FL papers.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, padding: int = 2) -> None:
        super().__init__()
        c, h, w = image_shape("lenet", input_shape)
        h, w = conv_out(h, 5, padding=padding) // 2, conv_out(w, 5, padding=padding) // 2
        h, w = conv_out(h, 5) // 2, conv_out(w, 5) // 2
        check_fits("lenet", input_shape, h, w)
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=padding),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * h * w, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
