"""Turn the errors a user can cause into one red line on stderr and exit status 2 (no traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer


@contextmanager
def user_errors() -> Iterator[None]:
    """Inside this block a ``ValueError``/``FileNotFoundError`` becomes its message and ``exit 2``."""
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None
