"""Load any data set saved as one ``.npz`` with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from robustfl.data.dataset import DATASETS, Dataset, from_arrays
from robustfl.data.files import DataFileCorrupt, DataFileMissing, check_declared_size

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_headers(file: Path) -> None:
    """Read only the ``.npy`` headers: refuse arrays larger than the archive holds or memory allows."""
    try:
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise DataFileCorrupt(
                        f"npz: {file}: {info.filename} declares {shape} {dtype} ({declared:,} bytes) but "
                        f"holds {info.file_size:,}; the file is corrupt"
                    )
                check_declared_size("npz", file, declared)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFileCorrupt(f"npz: cannot read {file}: {exc}; the file is corrupt or not a .npz") from None
    except ValueError as exc:
        if isinstance(exc, DataFileCorrupt):
            raise
        raise DataFileCorrupt(f"npz: {file}: bad array header ({exc}); the file is corrupt") from None


@DATASETS.register("npz")
def load_npz(
    data_dir: str | Path | None = None, path: str | Path | None = None, num_classes: int | None = None
) -> Dataset:
    """Read ``path`` (or ``data_dir`` when it names a ``.npz`` file).

    Images may be ``[N, H, W]``, ``[N, C, H, W]`` or channels-last ``[N, H, W, C]`` (taken as such when
    the last axis has 1, 3 or 4 entries and the second does not); integer pixels are scaled by 1/255
    before the per-channel normalisation. ``num_classes`` defaults to the largest label + 1.
    Object arrays are refused: the file is opened with ``allow_pickle=False``.
    """
    target = path if path is not None else data_dir
    if target is None:
        raise ValueError("dataset 'npz' needs path=<file.npz> (or data_dir pointing at the .npz file)")
    file = Path(target).expanduser()
    if not file.is_file():
        raise DataFileMissing(
            f"npz: file {file} not found; pass the path of a .npz holding {', '.join(KEYS)}"
        )
    if not zipfile.is_zipfile(file):
        raise DataFileCorrupt(f"npz: {file} is not a zip archive; the file is corrupt or not a .npz")
    _check_headers(file)
    try:
        with np.load(file, allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise DataFileCorrupt(
                    f"npz: {file} lacks {', '.join(missing)}; it must hold {', '.join(KEYS)} (it has {', '.join(npz.files)})"
                )
            arrays = {k: npz[k] for k in KEYS}
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFileCorrupt(f"npz: cannot read {file}: {exc}; the file is corrupt or not a .npz") from None
    except ValueError as exc:
        if isinstance(exc, DataFileCorrupt):
            raise
        raise DataFileCorrupt(f"npz: {file} holds object arrays ({exc}); save plain numeric arrays") from None
    tensors = []
    for key in KEYS:
        a = arrays[key]
        if key.startswith("x") and a.ndim == 4 and a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
            a = np.moveaxis(a, -1, 1)
        if key.startswith("x") and a.dtype.kind not in "biuf":
            raise DataFileCorrupt(f"npz: {file}: {key} must hold real numbers, got {a.dtype}")
        if key.startswith("x") and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DataFileCorrupt(f"npz: {file}: {key} holds NaN or infinite values; clean the data first")
        if key.startswith("y") and (a.dtype.kind not in "iu" or a.ndim != 1):
            raise DataFileCorrupt(f"npz: {file}: {key} must be a 1-D integer array, got {a.dtype} {a.shape}")
        tensors.append(torch.from_numpy(np.ascontiguousarray(a)))
    x_train, y_train, x_test, y_test = tensors
    return from_arrays(f"npz:{file.stem}", x_train, y_train, x_test, y_test, num_classes=num_classes)
