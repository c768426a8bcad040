"""A progress bar over the runs of a sweep or reproduction (silent with ``--quiet``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def runs_progress(total: int, label: str, quiet: bool) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield the ``on_done(summary)`` callback that advances a bar of ``total`` runs."""
    if quiet:
        yield lambda summary: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task(label, total=total)

        def on_done(summary: dict[str, Any]) -> None:
            bar.update(task, advance=1, description=f"{label} (last: {summary['name']})")

        yield on_done
