"""Build a registered model at given hidden widths (a client's own size or FedMA's grown global size)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from robustfl.models import build_model

ModelFactory = Callable[[Sequence[int]], nn.Module]

_WIDTH_OPTIONS: dict[str, Callable[[Sequence[int]], dict[str, Any]]] = {
    "mlp": lambda w: {"hidden": list(w)},
    "lenet": lambda w: {"widths": list(w)},
    "lenet-caffe": lambda w: {"widths": list(w)},
    "vgg9": lambda w: {"widths": list(w)},
    "lstm": lambda w: {"embed_dim": w[0], "hidden_size": w[1]},
}


def width_factory(name: str, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> ModelFactory:
    """``widths -> model``: the registered ``name`` with the hidden widths ``layers.widths`` reports.

    Widths per model: ``mlp`` its hidden layers; ``lenet`` (conv1, conv2, fc1, fc2); ``lenet-caffe``
    (conv1, conv2, fc); ``vgg9`` six conv channels and two FC units; ``lstm`` (embedding, hidden).
    ``options`` are the model's other constructor options (e.g. ``dropout=False``).
    """
    if name not in _WIDTH_OPTIONS:
        raise ValueError(f"FedMA can resize models {', '.join(sorted(_WIDTH_OPTIONS))}; got {name!r}")
    for key in ("hidden", "widths", "embed_dim", "hidden_size", "width_factor"):
        if key in options:
            raise ValueError(f"option {key!r} is set by FedMA from the widths; drop it")

    def make(widths: Sequence[int]) -> nn.Module:
        return build_model(name, input_shape, num_classes, **options, **_WIDTH_OPTIONS[name](widths))

    return make
