"""The Typer application object; command modules attach their commands to it.

Exit statuses of every command: 0 success, 1 an internal error (a bug: one line, the full traceback with
``--debug`` or ``ROBUSTFL_DEBUG=1``), 2 a user error (bad config, missing file, unknown name: one line),
3 the run diverged (``robustfl run``: the train loss became NaN/Inf; the run directory holds everything
up to that round), 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from typer.core import TyperOption

DEBUG_ENV = "ROBUSTFL_DEBUG"
EXIT_DIVERGED = 3

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Byzantine-robust distributed learning.",
    pretty_exceptions_enable=False,
)

_display_type = TyperOption.display_type_rich


def _flag_without_metavar(self: TyperOption, ctx: Any) -> str | None:
    """On/off flags take no value: show none (typer would print ``<bool>``)."""
    return None if self.is_flag else _display_type(self, ctx)


TyperOption.display_type_rich = _flag_without_metavar  # type: ignore[method-assign]


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def _print_version(value: bool) -> None:
    if value:
        from robustfl import __version__

        typer.echo(f"robustfl {__version__}")
        raise typer.Exit()


@app.command()
def version() -> None:
    """Print the installed version."""
    from robustfl import __version__

    typer.echo(__version__)


@app.callback()
def root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show full tracebacks of internal errors (or {DEBUG_ENV}=1).")
    ] = False,
) -> None:
    """robustfl: robust aggregators, compressors, attacks and a training simulator."""
    if debug:
        os.environ[DEBUG_ENV] = "1"
