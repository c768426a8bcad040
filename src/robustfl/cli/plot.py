"""``robustfl plot RUN_DIR...`` (run directories, or folders of runs such as a sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli.app import app


@app.command()
def plot(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directories, or folders of runs (a sweep, a demo).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG path (default FIRST/plots/<metric>.png).")
    ] = None,
    metric: Annotated[str, typer.Option(help="Which metrics.jsonl field to draw.")] = "test_accuracy",
    x: Annotated[
        list[str] | None,
        typer.Option("--x", metavar="round|wall|bits", help="x axis, repeatable (default: round and wall)."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Figure title (default: metric and run names).")] = None,
) -> None:
    """Draw a metric against rounds, wall-clock time or bits sent, one line per run, into a PNG."""
    from robustfl.experiment.plots import plot_runs

    with user_errors():
        path = plot_runs(
            run_dirs,
            out or run_dirs[0] / "plots" / f"{metric}.png",
            metric=metric,
            x=x or ("round", "wall"),
            title=title,
        )
    typer.echo(str(path))
