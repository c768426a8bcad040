"""``robustfl run CONFIG`` and ``robustfl config-schema``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors, warn
from robustfl.cli.app import EXIT_DIVERGED, app

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a field: key.path=value (repeatable), e.g. training.lr=0.05.",
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads", min=1, help="torch threads per run (default: 1 for small models; see training.threads)."
    ),
]
ImportOption = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        metavar="MODULE",
        help="Import MODULE before the run (it registers your own rules, attacks, models); repeatable.",
    ),
]


def default_out(name: str) -> Path:
    """``runs/<name>-<UTC timestamp>`` under the current folder (``-2``, ``-3``, ... if that exists),
    with ``name`` made a safe folder name (``experiment.rundir.default_run_dir``)."""
    from robustfl.experiment.rundir import default_run_dir

    return default_run_dir(name)


def packaged_configs() -> dict[str, Path]:
    """The configs shipped inside the package, by name (``demo``, ``edge-case``, ``bgmd-table2/...``)."""
    root = Path(__file__).resolve().parent.parent / "configs"
    return {
        str(p.relative_to(root).with_suffix("")).replace("_", "-"): p for p in sorted(root.rglob("*.toml"))
    }


def resolve_config(config: Path) -> Path:
    """``config`` when it is a file, else the packaged config of that name (``robustfl run demo``)."""
    if config.is_file() or config.suffix == ".toml":
        return config
    packaged = packaged_configs()
    key = str(config).strip().lower().replace("_", "-")
    if key in packaged:
        return packaged[key]
    top = sorted(k for k in packaged if "/" not in k)
    raise ValueError(
        f"config error: {config}: no such file, nor a packaged config (packaged: {', '.join(top)}, "
        f"and {len(packaged) - len(top)} in subfolders such as bgmd-table2/...)"
    )


@app.command()
def run(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="The experiment's TOML file, or a packaged config's name (demo); omit with --resume."
        ),
    ] = None,
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<name>-<time>).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the run in --out from its newest checkpoint (reads its config)."
        ),
    ] = False,
    threads: ThreadsOption = None,
    imports: ImportOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or table; print the run dir.")
    ] = False,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Also log scalars for TensorBoard to RUN_DIR/tensorboard.")
    ] = False,
) -> None:
    """Train one experiment and write its run directory (config, metrics.jsonl, summary, checkpoints,
    provenance). Exit status 3 when the run diverged."""
    from robustfl.experiment.config import load_config
    from robustfl.experiment.runner import run as run_experiment

    with user_errors():
        if resume and out is None:
            raise ValueError("--resume needs --out RUN_DIR: the run to continue")
        if config is None and not resume:
            raise ValueError("give a CONFIG file (or a packaged config: demo), or --resume --out RUN_DIR")
        path = resolve_config(config) if config is not None else Path(str(out)) / "config.toml"
        if config is None and not path.is_file():
            raise ValueError(f"--resume: {out} holds no run (no config.toml); check --out")
        cfg = load_config(path, set_ or [])
        cfg.imports = [*cfg.imports, *(m for m in imports or [] if m not in cfg.imports)]
        out_dir = out or default_out(cfg.name)
        try:
            summary = run_experiment(
                cfg,
                out_dir,
                resume=resume,
                quiet=quiet,
                tensorboard=tensorboard,
                threads=threads,
                notify=warn,
            )
        except KeyboardInterrupt:
            interrupted(out_dir)
            raise typer.Exit(130) from None
    if not quiet:
        from rich.console import Console

        from robustfl.experiment.sweep import result_row
        from robustfl.experiment.table import print_table

        rows = [{"field": k, "value": v} for k, v in {"run": cfg.name, **result_row(summary)}.items()]
        print_table(Console(), rows, ["field", "value"])
    typer.echo(str(out_dir) if quiet else f"run directory: {out_dir}")
    if summary["diverged"]:
        warn(
            f"the run diverged at round {summary['rounds']} (train loss NaN/Inf); exit status "
            f"{EXIT_DIVERGED}. Its metrics up to then are in {out_dir}"
        )
        raise typer.Exit(EXIT_DIVERGED)


def interrupted(out_dir: Path) -> None:
    """Say truthfully what Ctrl-C left behind and how to continue."""
    from robustfl.experiment.rundir import RunDir

    found = RunDir(out_dir).checkpoints() if out_dir.is_dir() else []
    command = f"robustfl run --resume --out {shlex.quote(str(out_dir))}"
    if found:
        warn(f"interrupted; round {found[-1][0]} is checkpointed. Continue with: {command}")
    elif (out_dir / "config.toml").exists():
        warn(f"interrupted before the first checkpoint; `{command}` starts again from round 0")
    else:
        warn("interrupted before the run started; nothing was written")


@app.command("config-schema")
def config_schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a markdown table (for docs) instead of a rich table.")
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

    from robustfl.experiment.table import print_table

    print_table(Console(), rows, columns)
