"""Finding and reading data files, with one clear error per missing or corrupt file."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path


class DataFileMissing(FileNotFoundError, ValueError):
    """A data file is not where the loader looks; the message lists the names and folders searched."""


class DataFileCorrupt(ValueError):
    """A data file exists but cannot be decoded (truncated, wrong format, bad values)."""


def require_dir(dataset: str, data_dir: str | Path | None) -> Path:
    """``data_dir`` as a ``Path``, or a ``ValueError`` asking for it."""
    if data_dir is None:
        raise ValueError(
            f"dataset {dataset!r} is read from files: pass data_dir (CLI: --data-dir) pointing at the folder that holds them"
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


def read_bytes(dataset: str, path: Path) -> bytes:
    """The (gunzipped, if the name ends in ``.gz``) contents of ``path``."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileCorrupt(
            f"{dataset}: cannot read {path}: {exc}; the file is corrupt or truncated, download it again"
        ) from None
