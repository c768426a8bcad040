"""ResNet-50 (He et al., 2016) and WideResNet-50-2 (Zagoruyko and Komodakis, 2016) with bottleneck
blocks, as used for ImageNet in seed 004 ch. 4 (Tables 4.5, 4.14, 4.15)."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models._shapes import image_shape
from robustfl.models.base import MODELS


class Bottleneck(nn.Module):
    """1×1 ``cin -> width``, 3×3 ``width -> width`` (carrying the stride), 1×1 ``width -> 4 planes``,
    BatchNorm after each; a 1×1 convolution + BN on the shortcut when the shape changes."""

    def __init__(self, cin: int, planes: int, width: int, stride: int) -> None:
        super().__init__()
        cout = 4 * planes
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class BottleneckResNet(nn.Module):
    """7×7 stem (64, stride 2) + BN + ReLU + 3×3 max-pool (stride 2), stages of (3, 4, 6, 3) bottleneck
    blocks with 64, 128, 256, 512 planes (the first block of stages 2–4 has stride 2), global average
    pooling and one FC layer (Table 4.14). ``width_factor`` widens the inner 3×3 convolutions
    (2 = WideResNet-50-2, Table 4.15). Parameter names follow the usual ImageNet layout
    (``conv1``, ``layer1.0.conv1``, ..., ``layer4.2.downsample.0``, ``fc``).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width_factor: int = 1) -> None:
        super().__init__()
        c, _, _ = image_shape(type(self).__name__, input_shape)
        self.conv1 = nn.Conv2d(c, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, cin = [], 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)):
            width = planes * width_factor
            stage = []
            for j in range(blocks):
                stage.append(Bottleneck(cin, planes, width, 2 if i > 0 and j == 0 else 1))
                cin = 4 * planes
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.pool(out).flatten(1))


@MODELS.register("resnet50")
class ResNet50(BottleneckResNet):
    """ResNet-50: **25,557,032** parameters with 1000 classes (Table 4.5). Has BatchNorm (loop path)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__(input_shape, num_classes, width_factor=1)


@MODELS.register("wide-resnet50-2", "wrn50-2")
class WideResNet50_2(BottleneckResNet):
    """WideResNet-50-2: inner 3×3 widths doubled, **68,883,240** parameters with 1000 classes (Table 4.5)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__(input_shape, num_classes, width_factor=2)
