"""The Typer application object; command modules attach their commands to it."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Byzantine-robust distributed learning.")


@app.command()
def version() -> None:
    """Print the installed version."""
    from robustfl import __version__

    typer.echo(__version__)


@app.callback()
def root() -> None:
    """robustfl: robust aggregators, compressors, attacks and a training simulator."""
