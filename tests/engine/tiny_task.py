"""A tiny synthetic task for fast simulator tests: 8x8 one-channel inputs, 3 Gaussian classes."""

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from robustfl.engine import Simulator


@dataclass
class TinyData:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


@cache
def tiny_data() -> TinyData:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 1, 8, 8, generator=gen)
    y = torch.randint(3, (400,), generator=gen)
    x = centres[y] + 2.0 * torch.randn(400, 1, 8, 8, generator=gen)
    return TinyData(x[:300], y[:300], x[300:], y[300:])


def tiny_cnn(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))


def tiny_bn(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))


def split(n: int, size: int = 300) -> list[Tensor]:
    return list(torch.arange(size).chunk(n))


def tiny_dropout(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, 3))


class DataDependent(nn.Module):
    """Branches on a tensor's value in Python, which vmap cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 3)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.linear(x.flatten(1))
        return out if bool(out.sum() > 0) else -out


class TinyLSTM(nn.Module):
    """Reads the 8 rows of an 8x8 input as a sequence; vmap has no batching rule for its CPU kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 4, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x.flatten(1, 2))
        result: Tensor = self.head(out[:, -1])
        return result


def make_simulator(**kw: object) -> "Simulator":
    """The tests' default simulator on the tiny task (10 clients, SGD with worker momentum, the mean);
    keyword arguments override any constructor argument."""
    from robustfl.aggregators import Average
    from robustfl.algorithms import DistributedSGD
    from robustfl.engine import Simulator

    args: dict = dict(
        model=tiny_cnn(),
        dataset=tiny_data(),
        partitions=split(10),
        algorithm=DistributedSGD(momentum=0.5),
        aggregator=Average(),
        batch_size=8,
        lr=0.1,
        seed=3,
    )
    args.update(kw)
    return Simulator(**args)
