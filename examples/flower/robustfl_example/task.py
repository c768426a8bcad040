"""The task both apps share: embedded MNIST split over the nodes, a small MLP, the run's options."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robustfl.compressors import COMPRESSORS, ErrorFeedback
from robustfl.compressors.base import Compressor
from robustfl.data import load_dataset, partition
from robustfl.models import build_model
from robustfl.streams import Streams

SEED = 0


def model() -> nn.Module:
    """The same initial weights on every node and on the server (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return build_model("mlp", (1, 28, 28), 10, hidden=(32,))


def node_data(partition_id: int, partitions: int) -> tuple[Tensor, Tensor]:
    """This node's share of the embedded MNIST training set (IID split, seeded)."""
    data = load_dataset("embedded-mnist")
    parts = partition(data.y_train, partitions, "iid", generator=Streams(SEED).shared("partition"))
    idx = parts[partition_id]
    return data.x_train[idx], data.y_train[idx]


def test_data() -> tuple[Tensor, Tensor]:
    data = load_dataset("embedded-mnist")
    return data.x_test, data.y_test


def compressor(config: dict[str, Any]) -> Compressor | None:
    """Top-k with error feedback, or none when ``compressor = "none"``."""
    if config["compressor"] == "none":
        return None
    return ErrorFeedback(COMPRESSORS.get(str(config["compressor"]), ratio=float(config["topk-ratio"])))
