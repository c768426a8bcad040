"""``robustfl sweep CONFIG --grid key=v1,v2 ...``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors, warn
from robustfl.cli._progress import runs_progress
from robustfl.cli.app import app
from robustfl.cli.run import ImportOption, SetOption, ThreadsOption, default_out, resolve_config


@app.command()
def sweep(
    config: Annotated[
        Path, typer.Argument(help="The base experiment's TOML file (or a packaged config's name).")
    ],
    grid: Annotated[
        list[str],
        typer.Option(
            "--grid", "-g", metavar="KEY=V1,V2", help="key=v1,v2,... (repeatable; the product of all is run)."
        ),
    ],
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Sweep folder (default runs/<name>-sweep-<time>).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", "-w", min=1, help="Runs in parallel (process pool); they share the cores."),
    ] = 1,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Finish the sweep in --out: skip finished points, resume partial ones."
        ),
    ] = False,
    threads: ThreadsOption = None,
    imports: ImportOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the table's path.")] = False,
) -> None:
    """Run a grid of experiments and write one table (sweep.csv, sweep.md) with a row per grid point;
    with a grid over training.seed also sweep_seeds.csv/.md (mean ± std over seeds)."""
    from robustfl.cli._output import console
    from robustfl.experiment.config import load_config
    from robustfl.experiment.sweep import RESULT_COLUMNS, SEED_COLUMNS, SEED_KEY, execute, over_seeds, plan
    from robustfl.experiment.table import print_table

    with user_errors():
        if resume and out is None:
            raise ValueError("--resume needs --out SWEEP_DIR: the sweep to finish")
        path = resolve_config(config)
        base = load_config(path, set_ or [])
        out_dir = out or default_out(f"{base.name}-sweep")
        checked = plan(path, grid, out_dir, overrides=set_ or [], resume=resume, imports=imports or [])
        for warning in checked.warnings:
            warn(f"warning: {warning}")
        try:
            with runs_progress(len(checked.points), f"sweep {base.name}", quiet) as on_done:
                rows = execute(checked, workers=workers, on_done=on_done, threads=threads)
        except KeyboardInterrupt:
            words = ["robustfl", "sweep", str(config)]
            for flag, values in (("-g", grid), ("-s", set_ or []), ("--import", imports or [])):
                words += [token for value in values for token in (flag, value)]
            command = shlex.join([*words, "--out", str(out_dir), "--resume"])
            warn(f"interrupted; finish the sweep with: {command}")
            raise typer.Exit(130) from None
    keys = [k for k, _ in checked.grid]
    diverged = sum(bool(r.get("diverged")) for r in rows)
    if not quiet:
        out_console = console()
        if SEED_KEY in keys:
            others = [k for k in keys if k != SEED_KEY]
            title = f"sweep of {base.name}: mean ± std over seeds"
            print_table(out_console, over_seeds(rows, others), [*others, *SEED_COLUMNS], title=title)
        else:
            print_table(out_console, rows, keys + RESULT_COLUMNS, title=f"sweep of {base.name}")
    if diverged:
        warn(f"{diverged} of {len(rows)} runs diverged (column 'diverged')")
    typer.echo(str(out_dir / "sweep.csv"))
