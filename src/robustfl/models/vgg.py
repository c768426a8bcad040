"""VGG-9 of Wang et al. (FedMA, ICLR 2020; Wang's dissertation ch. 5), Table 5.4."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from robustfl.models._shapes import check_fits, check_widths, image_shape
from robustfl.models.base import MODELS

VGG9_WIDTHS = (32, 64, 128, 128, 256, 256, 512, 512)
"""Table 5.4: six conv layers' output channels, then the two hidden FC layers' units."""


@MODELS.register("vgg9")
class VGG9(nn.Module):
    """Six 3×3 convolutions (stride 1, padding 1, with bias) and three FC layers, ReLU throughout, no BatchNorm:

    conv 32, conv 64, max-pool 2 · conv 128, conv 128, max-pool 2, dropout 0.05 · conv 256, conv 256,
    max-pool 2, dropout 0.1 · FC 512, FC 512, dropout 0.1, FC classes (Table 5.4; 4096 = 256·4·4 FC
    inputs for 32×32 images). 3,491,530 parameters on 3×32×32 inputs with 10 classes (Table 5.7's
    "original" column). The FC input is computed from ``input_shape`` so any image size divisible by 8 works.
    ``dropout=False`` removes the dropout layers (whose randomness ``vmap`` must be told about with
    ``randomness="different"``).

    ``widths`` (8 ints: six conv channels, two FC units) builds other sizes, e.g. FedMA's grown global
    model (Table 5.7: 47, 79, 143, 143, 271, 271, 527, 527 → 3,900,235 parameters). ``width_factor = k``
    multiplies the conv channels by ``k`` (rounded, at least 1) as in the chapter-8 capacity study
    (Zagoruyko and Komodakis' widening). Note that chapter 8 (Table 8.3) uses *another* VGG-9 (eight
    conv layers 64-512 and one FC layer); this class is chapter 5's.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        dropout: bool = True,
        widths: Sequence[int] = VGG9_WIDTHS,
        width_factor: float = 1.0,
    ) -> None:
        super().__init__()
        c, h, w = image_shape("vgg9", input_shape)
        h, w = h // 8, w // 8
        check_fits("vgg9", input_shape, h, w)
        if (
            isinstance(width_factor, bool)
            or not isinstance(width_factor, int | float)
            or not width_factor > 0
        ):
            raise ValueError(f"vgg9: width_factor must be a positive number, got {width_factor!r}")
        given = check_widths("vgg9", widths, 8)
        convs = [max(1, round(k * width_factor)) for k in given[:6]]
        self.widths = (*convs, *given[6:])
        c1, c2, c3, c4, c5, c6, f1, f2 = self.widths

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=1, padding=1), nn.ReLU()]

        def drop(p: float) -> list[nn.Module]:
            return [nn.Dropout(p)] if dropout else []

        self.features = nn.Sequential(
            *conv(c, c1),
            *conv(c1, c2),
            nn.MaxPool2d(2, 2),
            *conv(c2, c3),
            *conv(c3, c4),
            nn.MaxPool2d(2, 2),
            *drop(0.05),
            *conv(c4, c5),
            *conv(c5, c6),
            nn.MaxPool2d(2, 2),
            *drop(0.1),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c6 * h * w, f1),
            nn.ReLU(),
            nn.Linear(f1, f2),
            nn.ReLU(),
            *drop(0.1),
            nn.Linear(f2, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
