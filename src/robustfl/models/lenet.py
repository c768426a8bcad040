"""LeNet-5 (LeCun et al., 1998) and Caffe's 20-50-500 LeNet (the MNIST model of Wang et al., ICLR 2020)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from robustfl.models._shapes import check_fits, check_widths, conv_out, image_shape
from robustfl.models.base import MODELS


def _lenet(
    name: str, input_shape: tuple[int, ...], num_classes: int, widths: tuple[int, ...], padding: int
) -> tuple[nn.Sequential, nn.Sequential]:
    """Two 5×5 conv + ReLU + max-pool 2 stages, then FC layers of ``widths[2:]`` and the classifier."""
    c, h, w = image_shape(name, input_shape)
    h, w = conv_out(h, 5, padding=padding) // 2, conv_out(w, 5, padding=padding) // 2
    h, w = conv_out(h, 5) // 2, conv_out(w, 5) // 2
    check_fits(name, input_shape, h, w)
    c1, c2, *fc = widths
    features = nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    layers: list[nn.Module] = [nn.Flatten()]
    width = c2 * h * w
    for out in fc:
        layers += [nn.Linear(width, out), nn.ReLU()]
        width = out
    layers.append(nn.Linear(width, num_classes))
    return features, nn.Sequential(*layers)


@MODELS.register("lenet")
class LeNet(nn.Module):
    """LeNet-5 with ReLU and max-pooling, sized from the input.

    Layout: conv 6@5×5 (``padding``, default 2 so a 28×28 digit keeps its size as in the original
    32×32 input) → ReLU → max-pool 2 → conv 16@5×5 → ReLU → max-pool 2 → FC 120 → ReLU → FC 84 →
    ReLU → FC ``num_classes``. The first FC layer's width is computed from ``input_shape``, so the
    same model runs on 1×28×28 (61,706 parameters for 10 classes) and 3×32×32 (83,126) inputs.
    ReLU/max-pool rather than the original tanh/average-pool: the choice of current FL papers.
    ``widths`` = (conv1, conv2, fc1, fc2) channels/units, default (6, 16, 120, 84). This is the
    BGMD talk's LeNet; the FedMA chapter's LeNet is Caffe's 20-50-500 one, ``lenet-caffe``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        padding: int = 2,
        widths: Sequence[int] = (6, 16, 120, 84),
    ) -> None:
        super().__init__()
        self.widths = check_widths("lenet", widths, 4)
        self.features, self.classifier = _lenet("lenet", input_shape, num_classes, self.widths, padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@MODELS.register("lenet-caffe")
class CaffeLeNet(nn.Module):
    """Caffe's MNIST LeNet: conv 20@5×5 → ReLU → max-pool 2 → conv 50@5×5 → ReLU → max-pool 2 → FC 500 → ReLU → FC classes.

    No padding: 28×28 → 24 → 12 → 8 → 4, so the FC layer reads 50·4·4 = 800 inputs and the model has
    431,080 parameters for 10 classes, the "431k" of Table 5.3 in Wang's dissertation (FedMA, Wang
    et al., ICLR 2020). ``widths`` = (conv1, conv2, fc) default (20, 50, 500); FedMA's grown global
    model is built by passing the matched widths.
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, widths: Sequence[int] = (20, 50, 500)
    ) -> None:
        super().__init__()
        self.widths = check_widths("lenet-caffe", widths, 3)
        self.features, self.classifier = _lenet("lenet-caffe", input_shape, num_classes, self.widths, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
