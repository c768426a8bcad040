"""What produced a run: versions, code commit, machine, threads, device and command line.

``RUN_DIR/provenance.json`` holds a list with one entry per session (the first start, then each resume),
so a resumed run says where each part ran.
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def git_commit(path: Path) -> str | None:
    """The commit of the checkout holding ``path`` (``+dirty`` with local changes); None outside one."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def collect(*, threads: int, threads_reason: str, device: str, start_round: int) -> dict[str, Any]:
    """One session's provenance entry."""
    import torch

    import robustfl

    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "start_round": start_round,
        "robustfl": robustfl.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(Path(robustfl.__file__).resolve().parent),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "threads": threads,
        "threads_reason": threads_reason,
        "device": device,
        "command": sys.argv,
    }


def append(path: Path, entry: dict[str, Any]) -> None:
    """Add ``entry`` to the list in ``path`` (a new list when it is missing or unreadable)."""
    sessions: list[Any] = []
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            sessions = loaded if isinstance(loaded, list) else []
        except (json.JSONDecodeError, UnicodeDecodeError):
            sessions = []
    sessions.append(entry)
    path.write_text(json.dumps(sessions, indent=2) + "\n", encoding="utf-8")
