"""``robustfl run CONFIG`` and ``robustfl config-schema``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli.app import app

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a field: key.path=value (repeatable), e.g. training.lr=0.05."),
]


def default_out(name: str) -> Path:
    """``runs/<name>-<UTC timestamp>`` under the current folder (``-2``, ``-3``, ... if that exists),
    with ``name`` made a safe folder name (``experiment.rundir.default_run_dir``)."""
    from robustfl.experiment.rundir import default_run_dir

    return default_run_dir(name)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="The experiment's TOML file.")],
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<name>-<time>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its newest checkpoint.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or table; print the run dir.")
    ] = False,
    tensorboard: Annotated[
        bool, typer.Option(help="Also log scalars for TensorBoard to RUN_DIR/tensorboard.")
    ] = False,
) -> None:
    """Train one experiment and write its run directory (config, metrics.jsonl, summary, checkpoints)."""
    from robustfl.experiment.config import load_config
    from robustfl.experiment.runner import run as run_experiment

    with user_errors():
        cfg = load_config(config, set_ or [])
        if resume and out is None:
            raise ValueError("--resume needs --out RUN_DIR: the run to continue")
        out_dir = out or default_out(cfg.name)
        try:
            summary = run_experiment(cfg, out_dir, resume=resume, quiet=quiet, tensorboard=tensorboard)
        except KeyboardInterrupt:
            typer.secho(
                f"interrupted; continue from the last checkpoint with: robustfl run {config} --out {out_dir} --resume",
                fg="yellow",
                err=True,
            )
            raise typer.Exit(130) from None
    if quiet:
        typer.echo(str(out_dir))
        return
    from rich.console import Console

    from robustfl.experiment.sweep import result_row
    from robustfl.experiment.table import to_rich

    rows = [{"field": k, "value": v} for k, v in {"run": cfg.name, **result_row(summary)}.items()]
    Console().print(to_rich(rows, ["field", "value"]))
    typer.echo(f"run directory: {out_dir}")


@app.command("config-schema")
def config_schema(
    markdown: Annotated[
        bool, typer.Option(help="Print a markdown table (for docs) instead of a rich table.")
    ] = False,
) -> None:
    """List every config field with its type, default and meaning."""
    from robustfl.experiment.config import schema_rows

    rows = [dict(zip(("field", "type", "default", "description"), r, strict=True)) for r in schema_rows()]
    columns = ["field", "type", "default", "description"]
    if markdown:
        from robustfl.experiment.table import to_markdown

        typer.echo(to_markdown(rows, columns), nl=False)
        return
    from rich.console import Console

    from robustfl.experiment.table import to_rich

    Console().print(to_rich(rows, columns))
