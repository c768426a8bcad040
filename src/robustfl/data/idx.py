"""Loaders for data sets in the IDX format: MNIST, Fashion-MNIST and EMNIST.

IDX (LeCun's MNIST format): two zero bytes, a type byte (0x08 = uint8, ...), the number of
dimensions ``d``, then ``d`` big-endian uint32 sizes and the values in row-major big-endian order.
Files may be gzipped (``name.gz``) or raw.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from robustfl.data.dataset import DATASETS, Dataset, from_arrays
from robustfl.data.files import (
    DataFileCorrupt,
    check_declared_size,
    find_file,
    open_data,
    read_bytes,
    require_dir,
)

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

EMNIST_SPLITS = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10, "mnist": 10}


def _declared_size(dataset: str, path: Path) -> int:
    """The byte count the IDX header of ``path`` declares (read from the first bytes only)."""
    try:
        with open_data(path) as fh:
            head = fh.read(4)
            ndim = head[3] if len(head) == 4 else 0
            dims = fh.read(4 * ndim)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileCorrupt(
            f"{dataset}: cannot read {path}: {exc}; the file is corrupt or truncated, download it again"
        ) from None
    if len(head) < 4 or head[2] not in _IDX_TYPES or len(dims) < 4 * ndim:
        return 4 + 4 * ndim  # read_bytes then parse_idx report the bad header
    count = 1
    for size in np.frombuffer(dims, ">u4", ndim):
        count *= int(size)
    return 4 + 4 * ndim + count * np.dtype(_IDX_TYPES[head[2]]).itemsize


def parse_idx(dataset: str, path: Path) -> np.ndarray:
    """Decode one IDX file into a numpy array, rejecting a bad header or a truncated body.

    The header's declared size is checked against this machine's memory, and at most that many bytes
    are decompressed: a gzip bomb is refused after reading its header, not after inflating it."""
    declared = _declared_size(dataset, path)
    check_declared_size(dataset, path, declared)
    data = read_bytes(dataset, path, max_bytes=declared)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataFileCorrupt(f"{dataset}: {path} is not an IDX file (bad magic number); download it again")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileCorrupt(f"{dataset}: {path} is truncated (incomplete IDX header); download it again")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataFileCorrupt(
            f"{dataset}: {path} has {len(data)} bytes but its header {shape} needs {expected}; "
            "the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _load_idx_set(
    dataset: str,
    folders: list[Path],
    prefix: str,
    num_classes: int,
    label_offset: int = 0,
    transpose: bool = False,
) -> Dataset:
    arrays = {}
    for split, stem in (("train", "train"), ("test", "t10k" if not prefix else "test")):
        images = parse_idx(dataset, find_file(dataset, folders, [f"{prefix}{stem}-images-idx3-ubyte"]))
        labels = parse_idx(dataset, find_file(dataset, folders, [f"{prefix}{stem}-labels-idx1-ubyte"]))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataFileCorrupt(
                f"{dataset}: {split} images {images.shape} and labels {labels.shape} do not match "
                "(expected [N, H, W] and [N]); check the files"
            )
        y = labels.astype(np.int64) - label_offset
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise DataFileCorrupt(
                f"{dataset}: {split} labels outside [0, {num_classes}) after offset {label_offset}"
            )
        x = torch.from_numpy(images.copy())
        arrays[split] = (x.transpose(1, 2) if transpose else x, torch.from_numpy(y))
    return from_arrays(dataset, *arrays["train"], *arrays["test"], num_classes=num_classes)


@DATASETS.register("mnist")
def load_mnist(data_dir: str | Path | None = None) -> Dataset:
    """MNIST: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``) in ``data_dir`` or ``data_dir/MNIST/raw``."""
    root = require_dir("mnist", data_dir)
    return _load_idx_set("mnist", [root, root / "MNIST" / "raw", root / "mnist"], "", 10)


@DATASETS.register("fashion-mnist", "fashion_mnist", "fmnist")
def load_fashion_mnist(data_dir: str | Path | None = None) -> Dataset:
    """Fashion-MNIST (same file names as MNIST) in ``data_dir`` or ``data_dir/FashionMNIST/raw``."""
    root = require_dir("fashion-mnist", data_dir)
    folders = [root, root / "FashionMNIST" / "raw", root / "fashion-mnist", root / "fashion"]
    return _load_idx_set("fashion-mnist", folders, "", 10)


@DATASETS.register("emnist")
def load_emnist(data_dir: str | Path | None = None, split: str = "digits") -> Dataset:
    """EMNIST (Cohen et al., 2017): ``emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]``
    in ``data_dir``, ``data_dir/gzip`` (the official archive) or ``data_dir/EMNIST/raw``.

    ``split``: byclass (62 classes), bymerge (47), balanced (47), letters (26; labels 1..26 are
    shifted to 0..25), digits (10, the default: the digit task of seed 004 ch. 8), mnist (10).
    Images are stored transposed in the files; they are turned upright here.
    """
    if split not in EMNIST_SPLITS:
        raise ValueError(f"emnist split {split!r} is unknown; choose one of: {', '.join(EMNIST_SPLITS)}")
    root = require_dir("emnist", data_dir)
    folders = [root, root / "gzip", root / "EMNIST" / "raw", root / "emnist"]
    offset = 1 if split == "letters" else 0
    return _load_idx_set(
        f"emnist-{split}", folders, f"emnist-{split}-", EMNIST_SPLITS[split], offset, transpose=True
    )
