"""ResNet-18 for 32×32 inputs (He et al., 2016), as used in seed 004 (ATOMO, PUFFERFISH, DRACO, DETOX)."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models._shapes import image_shape
from robustfl.models.base import MODELS


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm; a 1×1 convolution + BN on the shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@MODELS.register("resnet18")
class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3×3 stem conv (64, stride 1, padding 1), four stages of two basic blocks
    (64, 128, 256, 512 channels; the first block of stages 3–5 has stride 2), global average pooling
    and one FC layer — seed 004 Table 4.13 ("conv1 … conv5_x, Avg Pool, 10-dim FC").

    ``stem_bn=False`` (default) is the chapter's network: Table 4.13 lists no BatchNorm after ``conv1``
    and the PUFFERFISH tables count **11,173,834** parameters for 10 classes (Tables 4.4, 4.6). The
    widely used CIFAR ResNet-18 puts a BatchNorm after the stem (``stem_bn=True``): its 64 scales and
    64 shifts make **11,173,962**. That 128 is the whole difference; the rest is identical.
    Has BatchNorm, so it trains on the engine's loop path (``uses_batchnorm``), not under ``vmap``.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, stem_bn: bool = False) -> None:
        super().__init__()
        c, _, _ = image_shape("resnet18", input_shape)
        self.conv1 = nn.Conv2d(c, 64, 3, stride=1, padding=1, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(64) if stem_bn else nn.Identity()
        self.relu = nn.ReLU()
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(self.pool(out).flatten(1))
