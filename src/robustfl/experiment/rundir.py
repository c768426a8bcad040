"""The run directory: everything one run leaves behind.

::

    RUN_DIR/
      config.toml          the resolved configuration (every default filled in)
      metrics.jsonl        one JSON object per evaluation, appended and flushed as the run goes
      summary.json         final metrics, totals and timing (written atomically at the end)
      checkpoints/round_000050.pt   the newest checkpoints (written atomically)
      plots/               PNGs from ``robustfl plot``

Checkpoints hold only tensors, numbers, strings and containers of them: they are written with
``torch.save`` and read back with ``torch.load(weights_only=True)``, so loading a checkpoint never
unpickles arbitrary objects. A checkpoint file is ``b"RFLCKPT1"``, the SHA-256 digest of the payload
(32 bytes), then the ``torch.save`` payload; the digest is verified before the payload is unpickled,
so a flipped bit or a torn copy is detected, and ``load_checkpoint()`` then says so and falls back to
the previous checkpoint that verifies.

Every file that must never be seen half-written (checkpoints, summary, config) is written to a
temporary ``.<name>.<random>.tmp`` in the same folder, flushed and fsynced, moved into place with
``os.replace``, and the folder is fsynced so the rename itself survives a power cut. A temporary left
by a killed process is removed by the next checkpoint write or load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import tomli_w
import torch

_CKPT = re.compile(r"^round_(\d+)\.pt$")
CHECKPOINT_MAGIC = b"RFLCKPT1"
_DIGEST = 32


_UNSAFE = re.compile(r"[^\w.+=,@-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def safe_name(name: str, max_length: int = 80) -> str:
    """``name`` as one harmless path component (for a run folder under ``runs/``).

    Every run of characters other than letters, digits and ``. _ + = , @ -`` (path separators, ``..``
    tricks only work with them, control characters such as newline and NUL, spaces) becomes ``_``;
    leading dots, dashes and underscores are dropped (no hidden folders, nothing that reads as an
    option), Windows device names get a ``_`` suffix, and the result is at most ``max_length``
    characters; an empty result is ``run``. So ``../../x`` gives ``x`` and ``/etc/passwd`` ``etc_passwd``.
    """
    if not isinstance(name, str):
        raise ValueError(f"a run name must be a string, got {type(name).__name__}")
    clean = _UNSAFE.sub("_", name).lstrip("._-")[:max_length].rstrip("._-")
    if clean.split(".")[0].upper() in _RESERVED:
        clean += "_"
    return clean or "run"


def default_run_dir(name: str, root: str | Path = "runs", now: datetime | None = None) -> Path:
    """``root/<safe_name(name)>-<UTC timestamp>`` (``-2``, ``-3``, ... if that exists): always a new
    folder directly inside ``root``, whatever the configured name holds."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{safe_name(name)}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary sibling and ``os.replace``: readers see the old or the new file.

    The data and then the folder are fsynced, so after a crash the path holds one of the two versions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, readable_mode())  # mkstemp makes 0600; outputs are readable like any other file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def readable_mode() -> int:
    """The mode of a new ordinary file under the current umask (0644 under the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files a killed ``atomic_write`` left in ``folder``; returns them."""
    if not folder.is_dir():
        return []
    stale = [
        p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file()
    ]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """The checkpoint file: magic, SHA-256 of the payload, then the ``torch.save`` payload."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Verify and load one checkpoint file; any problem is one ``ValueError`` line naming the file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the checkpoint ({err.strerror})") from None
    head = len(CHECKPOINT_MAGIC) + _DIGEST
    if len(data) < head or not data.startswith(CHECKPOINT_MAGIC):
        raise ValueError(f"{path}: not a robustfl checkpoint (no RFLCKPT1 header; truncated or foreign)")
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(CHECKPOINT_MAGIC) : head]:
        raise ValueError(f"{path}: checkpoint is corrupt (SHA-256 digest mismatch)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path}: not a readable robustfl checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: checkpoint holds a {type(state).__name__}, expected a dict")
    return state


class RunDir:
    """Paths and I/O of one run directory. ``keep`` = how many checkpoints to keep."""

    def __init__(self, path: str | Path, keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = keep
        self.loaded: Path | None = None
        """The checkpoint file the last ``load_checkpoint`` returned."""

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def write_config(self, config: dict[str, Any]) -> None:
        """Write the resolved config (at the start of every run and resume, which also clears the
        temporaries a killed run left in the folder and its checkpoints)."""
        remove_stale_temporaries(self.path)
        remove_stale_temporaries(self.checkpoint_dir)
        atomic_write(self.config_path, lambda fh: fh.write(tomli_w.dumps(config).encode()))

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one evaluation as a JSON line and flush it to disk (a crash loses at most this line)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """All complete metric lines (a torn last line from a crash is ignored)."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return records

    def truncate_metrics(self, last_round: int) -> None:
        """Keep only the lines up to ``last_round``: a resumed run rewrites what came after its checkpoint."""
        kept = [r for r in self.read_metrics() if r["round"] <= last_round]
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        atomic_write(self.metrics_path, lambda fh: fh.write(text.encode()))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write(
            self.summary_path, lambda fh: fh.write(json.dumps(summary, indent=2, sort_keys=True).encode())
        )

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.exists():
            raise ValueError(f"{self.path}: no summary.json (the run has not finished)")
        result: dict[str, Any] = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return result

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(round, path) of every checkpoint, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir() if (m := _CKPT.match(p.name))]
        return sorted(found)

    def save_checkpoint(self, round_: int, state: dict[str, Any]) -> Path:
        """Write ``state`` (tensors and plain values only) atomically with its digest, then drop all but
        the newest ``keep`` (and any temporary a killed write left behind)."""
        if isinstance(round_, bool) or not isinstance(round_, int) or round_ < 0:
            raise ValueError(f"checkpoint round must be an integer >= 0, got {round_!r}")
        remove_stale_temporaries(self.checkpoint_dir)
        path = self.checkpoint_dir / f"round_{round_:06d}.pt"
        data = checkpoint_bytes(state)
        atomic_write(path, lambda fh: fh.write(data))
        for _, old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(
        self, path: Path | None = None, *, on_skip: Callable[[str], object] | None = None
    ) -> dict[str, Any]:
        """Load and verify ``path``; by default the newest checkpoint that verifies.

        Without ``path``, a newest checkpoint that fails its digest (or does not load) is skipped for the
        previous one: ``on_skip`` receives one line saying which file was bad and which one is used.
        If none verifies, the ``ValueError`` lists every failure.
        """
        if path is not None:
            state = read_checkpoint(Path(path))
            self.loaded = Path(path)
            return state
        remove_stale_temporaries(self.checkpoint_dir)
        found = self.checkpoints()
        if not found:
            raise ValueError(f"{self.checkpoint_dir}: no checkpoint to resume from")
        problems: list[str] = []
        for _, candidate in reversed(found):
            try:
                state = read_checkpoint(candidate)
            except ValueError as err:
                problems.append(str(err))
                continue
            if problems and on_skip is not None:
                on_skip(f"{'; '.join(problems)}; resuming from the previous checkpoint {candidate.name}")
            self.loaded = candidate
            return state
        raise ValueError(f"no usable checkpoint in {self.checkpoint_dir}: {'; '.join(problems)}")
