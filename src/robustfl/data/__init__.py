"""Data: the embedded default data set, file loaders and client partitioners.

``load_dataset("embedded-mnist")`` returns a normalised ``Dataset``;
``partition(ds.y_train, num_clients, "dirichlet", generator=g, alpha=0.1)`` splits it across clients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustfl.data.cifar import load_cifar10, load_cifar100
from robustfl.data.dataset import DATASETS, Dataset, from_arrays
from robustfl.data.embedded import load_embedded_mnist
from robustfl.data.files import DataFileCorrupt, DataFileMissing
from robustfl.data.idx import load_emnist, load_fashion_mnist, load_mnist
from robustfl.data.leaf import SHAKESPEARE_LETTERS, load_femnist, load_shakespeare
from robustfl.data.npz import load_npz
from robustfl.data.partition import PARTITION_SCHEMES, grayscale_skew, partition, scheme_options, to_grayscale
from robustfl.data.summary import partition_summary

__all__ = [
    "DATASETS",
    "PARTITION_SCHEMES",
    "SHAKESPEARE_LETTERS",
    "DataFileCorrupt",
    "DataFileMissing",
    "Dataset",
    "from_arrays",
    "grayscale_skew",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_embedded_mnist",
    "load_emnist",
    "load_fashion_mnist",
    "load_femnist",
    "load_mnist",
    "load_npz",
    "load_shakespeare",
    "partition",
    "partition_summary",
    "scheme_options",
    "to_grayscale",
]


def load_dataset(name: str = "embedded-mnist", data_dir: str | Path | None = None, **options: Any) -> Dataset:
    """Load the data set registered as ``name`` (see ``DATASETS.names()``); ``options`` go to its loader."""
    return DATASETS.get(name, data_dir=data_dir, **options)
