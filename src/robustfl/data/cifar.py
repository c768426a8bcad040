"""Loaders for the *binary* versions of CIFAR-10 and CIFAR-100 (no pickle is ever read).

A CIFAR-10 record is 1 label byte then 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, each a
32×32 image in row-major order); a CIFAR-100 record has 2 label bytes (coarse, fine) before the pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustfl.data.dataset import DATASETS, Dataset, from_arrays
from robustfl.data.files import DataFileCorrupt, find_file, read_bytes, require_dir

PIXELS = 3 * 32 * 32


def _records(
    dataset: str, path: Path, label_bytes: int, label_index: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    data = read_bytes(dataset, path)
    size = label_bytes + PIXELS
    if not data or len(data) % size:
        raise DataFileCorrupt(
            f"{dataset}: {path} has {len(data)} bytes, not a whole number of {size}-byte records; "
            "the file is truncated or not the binary version, download it again"
        )
    rec = np.frombuffer(data, np.uint8).reshape(-1, size)
    labels = rec[:, label_index].astype(np.int64)
    if labels.max() >= num_classes:
        raise DataFileCorrupt(
            f"{dataset}: {path} has label {labels.max()} >= {num_classes}; the file is corrupt"
        )
    return rec[:, label_bytes:].reshape(-1, 3, 32, 32), labels


def _load(
    dataset: str,
    folders: list[Path],
    train: list[str],
    test: list[str],
    label_bytes: int,
    label_index: int,
    num_classes: int,
) -> Dataset:
    splits = []
    for names in (train, test):
        parts = [
            _records(dataset, find_file(dataset, folders, [n]), label_bytes, label_index, num_classes)
            for n in names
        ]
        splits.append(
            (
                torch.from_numpy(np.concatenate([p[0] for p in parts])),
                torch.from_numpy(np.concatenate([p[1] for p in parts])),
            )
        )
    return from_arrays(dataset, *splits[0], *splits[1], num_classes=num_classes)


@DATASETS.register("cifar10", "cifar-10")
def load_cifar10(data_dir: str | Path | None = None) -> Dataset:
    """CIFAR-10 binary: ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin`` in ``data_dir``
    or ``data_dir/cifar-10-batches-bin`` (the folder the official ``cifar-10-binary.tar.gz`` unpacks to)."""
    root = require_dir("cifar10", data_dir)
    folders = [root, root / "cifar-10-batches-bin"]
    train = [f"data_batch_{i}.bin" for i in range(1, 6)]
    return _load("cifar10", folders, train, ["test_batch.bin"], 1, 0, 10)


@DATASETS.register("cifar100", "cifar-100")
def load_cifar100(data_dir: str | Path | None = None, labels: str = "fine") -> Dataset:
    """CIFAR-100 binary: ``train.bin`` and ``test.bin`` in ``data_dir`` or ``data_dir/cifar-100-binary``.

    ``labels="fine"`` (100 classes, default) or ``"coarse"`` (20 superclasses).
    """
    if labels not in ("fine", "coarse"):
        raise ValueError(f"cifar100 labels must be 'fine' or 'coarse', got {labels!r}")
    root = require_dir("cifar100", data_dir)
    folders = [root, root / "cifar-100-binary"]
    index, classes = (1, 100) if labels == "fine" else (0, 20)
    return _load("cifar100", folders, ["train.bin"], ["test.bin"], 2, index, classes)
