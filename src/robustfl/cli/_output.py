"""The console commands print to: the terminal's width on a terminal, unlimited when piped or logged."""

from __future__ import annotations

from typing import Any

UNLIMITED = 10_000  # columns: a piped table is never cut to 80 columns or ellipsised


def console(**kwargs: Any) -> Any:
    """A ``rich.console.Console``; when stdout is not a terminal its width does not truncate cells."""
    from rich.console import Console

    out = Console(**kwargs)
    if not out.is_terminal:
        out = Console(**{**kwargs, "width": UNLIMITED})
    return out
