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
unpickles arbitrary objects. Every file that must never be seen half-written (checkpoints, summary,
config) is written to a temporary file in the same folder and moved into place with ``os.replace``.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import tomli_w
import torch

_CKPT = re.compile(r"^round_(\d+)\.pt$")


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary sibling and ``os.replace``: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """Paths and I/O of one run directory. ``keep`` = how many checkpoints to keep."""

    def __init__(self, path: str | Path, keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = keep

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
        """Write ``state`` (tensors and plain values only) atomically, then drop all but the newest ``keep``."""
        path = self.checkpoint_dir / f"round_{round_:06d}.pt"
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(path, lambda fh: fh.write(buffer.getbuffer()))
        for _, old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        """Load ``path`` (default: the newest checkpoint) without unpickling arbitrary objects."""
        if path is None:
            found = self.checkpoints()
            if not found:
                raise ValueError(f"{self.checkpoint_dir}: no checkpoint to resume from")
            path = found[-1][1]
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(
                f"{path}: not a readable robustfl checkpoint ({type(err).__name__}: {err})"
            ) from None
        return state
