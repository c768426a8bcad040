"""``robustfl plot RUN_DIR...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli.app import app


@app.command()
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG path (default FIRST_RUN/plots/accuracy.png).")
    ] = None,
    metric: Annotated[str, typer.Option(help="Which metrics.jsonl field to draw.")] = "test_accuracy",
) -> None:
    """Draw accuracy vs round and vs wall-clock time, one line per run, into a PNG."""
    from robustfl.experiment.plots import plot_runs

    with user_errors():
        path = plot_runs(run_dirs, out or run_dirs[0] / "plots" / f"{metric}.png", metric=metric)
    typer.echo(str(path))
