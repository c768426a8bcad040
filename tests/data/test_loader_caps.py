"""Data files that must be refused before they cost memory or poison training (issue 11)."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from robustfl.data import load_dataset
from robustfl.data.files import DataFileCorrupt


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    base = {
        "x_train": np.zeros((6, 4, 4), np.float32),
        "y_train": np.arange(6) % 2,
        "x_test": np.zeros((2, 4, 4), np.float32),
        "y_test": np.array([0, 1]),
    }
    np.savez(path, **{**base, **arrays})
    return path


def test_npz_header_declaring_64_gib_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (1 << 33,)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\0" * 64)
        for key in ("y_train", "x_test", "y_test"):
            buffer = io.BytesIO()
            np.save(buffer, np.zeros(2, np.int64))
            archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(DataFileCorrupt, match=r"x_train.npy declares \(8589934592,\) float64"):
        load_dataset("npz", path=path)


def test_npz_empty_test_split_nan_and_complex_pixels(tmp_path: Path) -> None:
    empty = _npz(tmp_path / "e.npz", x_test=np.zeros((0, 4, 4), np.float32), y_test=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="the test split is empty"):
        load_dataset("npz", path=empty)
    x = np.zeros((6, 4, 4), np.float32)
    x[0, 0, 0] = np.nan
    with pytest.raises(DataFileCorrupt, match="x_train holds NaN or infinite values"):
        load_dataset("npz", path=_npz(tmp_path / "n.npz", x_train=x))
    with pytest.raises(DataFileCorrupt, match="x_test must hold real numbers, got complex64"):
        load_dataset("npz", path=_npz(tmp_path / "c.npz", x_test=np.zeros((2, 4, 4), np.complex64)))


def _idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def _write_mnist(folder: Path, train_images: bytes) -> None:
    for stem, n in (("train", 2), ("t10k", 2)):
        images = train_images if stem == "train" else _idx_header((n, 4, 4)) + bytes(n * 16)
        (folder / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        labels = _idx_header((n,)) + bytes(n)
        (folder / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))


def test_idx_gzip_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    """A small header followed by far more data than it declares is refused after reading the declared
    size plus one byte (never inflated whole)."""
    _write_mnist(tmp_path, _idx_header((2, 4, 4)) + bytes(64 << 20))
    with pytest.raises(DataFileCorrupt, match="decompresses to\\) more than 48 bytes"):
        load_dataset("mnist", tmp_path)


def test_idx_header_larger_than_memory_is_refused(tmp_path: Path) -> None:
    _write_mnist(tmp_path, _idx_header((1 << 31, 1 << 16, 1 << 16)))
    with pytest.raises(DataFileCorrupt, match="declares .* GiB of data, more than this machine's"):
        load_dataset("mnist", tmp_path)


def test_dataset_repr_is_short() -> None:
    text = repr(load_dataset("embedded-mnist"))
    assert "\n" not in text and len(text) < 200 and "tensor(" not in text
