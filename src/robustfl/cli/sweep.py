"""``robustfl sweep CONFIG --grid key=v1,v2 ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli._progress import runs_progress
from robustfl.cli.app import app
from robustfl.cli.run import SetOption, default_out


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="The base experiment's TOML file.")],
    grid: Annotated[
        list[str], typer.Option("--grid", "-g", help="key=v1,v2,... (repeatable; the product of all is run).")
    ],
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Sweep folder (default runs/<name>-sweep-<time>).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Runs in parallel (process pool).")
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the table's path.")] = False,
) -> None:
    """Run a grid of experiments and write one table (sweep.csv, sweep.md) with a row per grid point."""
    from rich.console import Console

    from robustfl.experiment.config import load_config
    from robustfl.experiment.sweep import RESULT_COLUMNS, expand, parse_grid
    from robustfl.experiment.sweep import sweep as run_sweep
    from robustfl.experiment.table import to_rich

    with user_errors():
        base = load_config(config, set_ or [])
        out_dir = out or default_out(f"{base.name}-sweep")
        parsed = parse_grid(grid)
        with runs_progress(len(expand(parsed)), f"sweep {base.name}", quiet) as on_done:
            rows = run_sweep(config, grid, out_dir, overrides=set_ or [], workers=workers, on_done=on_done)
    console = Console(quiet=quiet)
    keys = [k for k, _ in parsed]
    console.print(to_rich(rows, keys + RESULT_COLUMNS, title=f"sweep of {base.name}"))
    typer.echo(str(out_dir / "sweep.csv"))
