"""A fully connected network (the "FC" model of seed 004 ch. 6 on MNIST)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

from robustfl.models.base import MODELS


@MODELS.register("mlp")
class MLP(nn.Module):
    """Flatten → [Linear → ReLU] per entry of ``hidden`` → Linear ``num_classes``.

    ``hidden=()`` gives multinomial logistic regression. Default ``(200, 200)``: the 2×200 MNIST MLP of
    McMahan et al. (2017), 199,210 parameters on 1×28×28 inputs.
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (200, 200)
    ) -> None:
        super().__init__()
        if isinstance(hidden, int) or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(
                f"hidden must be a list of positive layer widths such as [200, 200], got {hidden!r}"
            )
        widths = [math.prod(input_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
