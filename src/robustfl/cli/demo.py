"""``robustfl demo``: a short robust run (bit-flip attackers; SGD vs median, GM and BGMD) with a table and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli.app import app
from robustfl.cli.run import SetOption, ThreadsOption, default_out


@app.command()
def demo(
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds per rule (default: configs/demo.toml's).")
    ] = None,
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder (default runs/demo-<time>).")
    ] = None,
    threads: ThreadsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """10 workers, 2 send -100x their gradient: train with mean, median, GM and BGMD; print accuracies and a plot."""
    from robustfl.cli._output import console
    from robustfl.experiment.demo import run_demo
    from robustfl.experiment.table import print_table

    overrides = [*(set_ or []), *([f"training.rounds={rounds}"] if rounds else [])]
    with user_errors():
        rows, png = run_demo(out or default_out("demo"), overrides=overrides, quiet=quiet, threads=threads)
    print_table(console(), rows, list(rows[0]), title="10 workers, 2 bit-flip attackers (-100 g)")
    typer.echo(f"plot: {png}")
