"""``robustfl bench ...``: speed benchmarks (the same code as the scripts in ``benchmarks/``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli.app import app

bench_app = typer.Typer(no_args_is_help=True, help="Speed benchmarks; they print ratios measured in one run.")
app.add_typer(bench_app, name="bench")


@bench_app.command("aggregators")
def aggregators(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small d, few repeats: a smoke run, not a measurement.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the full report to this JSON file.")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write the tables and checks to this Markdown file.")
    ] = None,
    byzfl: Annotated[
        str | None,
        typer.Option("--byzfl", help="A ByzFL checkout to time side by side (default: $ROBUSTFL_BYZFL)."),
    ] = None,
    byzpy: Annotated[
        str | None,
        typer.Option(
            "--byzpy", help="A ByzPy source folder to time side by side (default: $ROBUSTFL_BYZPY)."
        ),
    ] = None,
    rule: Annotated[list[str] | None, typer.Option("--rule", help="Only this rule (repeatable).")] = None,
    n: Annotated[list[int] | None, typer.Option("--n", min=1, help="Only this n (repeatable).")] = None,
    d: Annotated[list[int] | None, typer.Option("--d", min=1, help="Only this d (repeatable).")] = None,
    max_numel: Annotated[
        int | None, typer.Option("--max-numel", min=1, help="Skip cells with n*d above this (default 2^25).")
    ] = None,
    min_time: Annotated[
        float | None,
        typer.Option("--min-time", min=0.0, help="Seconds spent timing each call (default 0.5)."),
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch intra-op threads.")] = 2,
    clock: Annotated[
        str,
        typer.Option(
            "--clock", help="'wall' (default) or 'cpu' (process CPU time: left out descheduled time)."
        ),
    ] = "wall",
) -> None:
    """Every registered aggregator on n in {16, 64, 256, 1024}, d in {10^3, 10^4, 65536, 10^6}
    (cells up to --max-numel), float32: time, passes over the input, and speed-up over ByzFL and
    ByzPy; then the target checks (PASS/MISS)."""
    if "torch" not in sys.modules:
        # OpenMP's default spin-waiting makes every parallel op stall for a scheduler slice when the
        # cores are shared (measured: ARC on [16, 10^4] 30 ms spinning vs 0.18 ms passive, 2 threads,
        # load ~5 on 2 cores); sleeping waiters cost nothing measurable on an idle machine. It must be
        # set before torch loads its OpenMP runtime, and it applies to both libraries alike.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from robustfl.bench.aggregators import Settings, markdown, run, write_json

    settings = Settings.quick() if quick else Settings()
    settings.threads = threads
    if clock not in ("wall", "cpu"):
        raise typer.BadParameter(f"--clock must be 'wall' or 'cpu', got {clock!r}")
    settings.clock = clock
    if n:
        settings.ns = tuple(n)
    if d:
        settings.ds = tuple(d)
    if max_numel is not None:
        settings.max_numel = max_numel
    if min_time is not None:
        settings.min_time = min_time
    try:
        report = run(settings, byzfl_path=byzfl, only=rule or None, echo=typer.echo, byzpy_path=byzpy)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if json_path is not None:
        write_json(report, json_path)
        typer.echo(f"wrote {json_path}")
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown(report))
        typer.echo(f"wrote {markdown_path}")
