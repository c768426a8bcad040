"""Turn the errors a user can cause into one red line on stderr and exit status 2 (no traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer


@contextmanager
def user_errors() -> Iterator[None]:
    """Inside this block a ``ValueError`` or ``OSError`` (missing file, permission) becomes its message
    and ``exit 2``."""
    try:
        yield
    except (ValueError, OSError) as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None


def warn(message: str) -> None:
    """A yellow line on stderr."""
    typer.secho(f"robustfl: {message}", fg="yellow", err=True)
