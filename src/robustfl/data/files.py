"""Finding and reading data files, with one clear error per missing or corrupt file."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

CHUNK = 1 << 24  # bytes read at a time, so a size limit is enforced without allocating the limit


def memory_bytes() -> int:
    """This machine's physical memory (bytes): no data file may declare more than that."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 64 << 30


def check_declared_size(dataset: str, path: Path, declared: int) -> None:
    """Refuse a file whose header declares more data than this machine's memory."""
    limit = memory_bytes()
    if declared > limit:
        raise DataFileCorrupt(
            f"{dataset}: {path} declares {declared / 2**30:.1f} GiB of data, more than this machine's "
            f"{limit / 2**30:.1f} GiB of memory; the file is corrupt or not meant for this loader"
        )


class DataFileMissing(FileNotFoundError, ValueError):
    """A data file is not where the loader looks; the message lists the names and folders searched."""


class DataFileCorrupt(ValueError):
    """A data file exists but cannot be decoded (truncated, wrong format, bad values)."""


def require_dir(dataset: str, data_dir: str | Path | None) -> Path:
    """``data_dir`` as a ``Path``, or a ``ValueError`` asking for it."""
    if data_dir is None:
        raise ValueError(
            f"dataset {dataset!r} is read from files: set data.data_dir to the folder that holds them "
            f"(in the config, or --set data.data_dir=PATH; `robustfl partition` and `reproduce` take --data-dir)"
        )
    return Path(data_dir).expanduser()


def find_file(dataset: str, folders: Sequence[Path], names: Sequence[str]) -> Path:
    """The first existing ``folder/name`` (``name`` or ``name.gz``), searching folders then names in order."""
    for folder in folders:
        for name in names:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
    where = ", ".join(str(f) for f in folders)
    raise DataFileMissing(
        f"{dataset}: file {names[0]} (or {names[0]}.gz) not found; looked in: {where}. "
        f"Expected files: {', '.join(names)}; see docs/data.md for the layout"
    )


def open_data(path: Path) -> BinaryIO:
    """``path`` opened for reading, through gunzip when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def read_bytes(dataset: str, path: Path, max_bytes: int | None = None) -> bytes:
    """The (gunzipped, if the name ends in ``.gz``) contents of ``path``, at most ``max_bytes`` of them
    (default: this machine's memory): a file that decompresses to more is refused, not read."""
    limit = memory_bytes() if max_bytes is None else max_bytes
    try:
        chunks, size = [], 0
        with open_data(path) as fh:
            while size <= limit and (chunk := fh.read(min(CHUNK, limit + 1 - size))):
                chunks.append(chunk)
                size += len(chunk)
        data = b"".join(chunks)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileCorrupt(
            f"{dataset}: cannot read {path}: {exc}; the file is corrupt or truncated, download it again"
        ) from None
    if len(data) > limit:
        raise DataFileCorrupt(
            f"{dataset}: {path} holds (or decompresses to) more than {limit:,} bytes, more than its "
            f"format allows here; the file is corrupt, download it again"
        )
    return data
