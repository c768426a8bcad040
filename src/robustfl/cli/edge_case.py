"""``robustfl reproduce edge-case`` (and its alias ``robustfl edge-case``): the edge-case backdoor of
Wang et al. (NeurIPS 2020) as config runs over ``configs/edge_case.toml`` (robustfl.experiment.edge_case)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli._progress import runs_progress
from robustfl.cli.app import app
from robustfl.cli.reproduce import reproduce_app, with_rounds
from robustfl.cli.run import SetOption, default_out


def edge_case(
    pattern: Annotated[
        list[str] | None,
        typer.Option(help="fixed-frequency and/or fixed-pool (repeatable; default both)."),
    ] = None,
    mode: Annotated[
        list[str] | None, typer.Option(help="none, black-box, pgd, pgd-mr (repeatable; default all).")
    ] = None,
    defence: Annotated[
        list[str] | None,
        typer.Option(
            help="none, ndc, krum, multi-krum, rfa, weak-dp, trimmed-mean (repeatable; default all)."
        ),
    ] = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="Rounds per attacked run (default 60).")] = None,
    pretrain_rounds: Annotated[
        int, typer.Option(min=0, help="Clean pre-training rounds whose model starts every run (0: scratch).")
    ] = 40,
    quick: Annotated[
        bool, typer.Option("--quick", help="One pattern, modes none / pgd-mr, defences none / ndc, 3 rounds.")
    ] = False,
    study: Annotated[
        str | None,
        typer.Option(
            help="split (Fig. 8.3: the adversary's share p of the edge examples, the honest clients hold the "
            "rest labelled correctly) or capacity (Fig. 8.8: MLP hidden width); one pattern, mode, defence "
            "(default fixed-pool, black-box, none)."
        ),
    ] = None,
    share: Annotated[
        list[float] | None,
        typer.Option(help="--study split: adversary shares p (repeatable; default 0 0.25 0.5 0.75 1)."),
    ] = None,
    width: Annotated[
        list[int] | None,
        typer.Option(help="--study capacity: hidden widths (repeatable; default 16 64 200 800)."),
    ] = None,
    set_: SetOption = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Runs in parallel.")] = 1,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder (default runs/edge-case-<time>).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the table.")] = False,
) -> None:
    """Main and backdoor accuracy of FedAvg (30 clients, 10 per round) per attack mode and defence."""
    from rich.console import Console

    from robustfl.experiment import edge_case as ec
    from robustfl.experiment.table import to_rich

    if quick:
        pattern, mode, defence = ["fixed-frequency"], ["none", "pgd-mr"], ["none", "ndc"]
        rounds, pretrain_rounds = 3, min(pretrain_rounds, 3)
    overrides = with_rounds(set_, rounds)
    out_dir = out or default_out("edge-case")
    if study is not None:
        _study(
            study, share, width, pattern, mode, defence, pretrain_rounds, overrides, workers, out_dir, quiet
        )
        return
    total = len(pattern or ec.PATTERNS) * len(mode or ec.MODES) * len(defence or ec.DEFENCES)
    with user_errors(), runs_progress(total, "edge-case", quiet) as on_done:
        rows = ec.reproduce(
            out_dir,
            patterns=pattern,
            modes=mode,
            defences=defence,
            pretrain_rounds=pretrain_rounds,
            overrides=overrides,
            workers=workers,
            on_done=on_done,
        )
    Console(width=160).print(
        to_rich(rows, ec.COLUMNS, title="Edge-case backdoor: final accuracies (selected = Krum share)")
    )
    typer.echo(f"table: {out_dir / 'edge_case.md'}")


def _study(
    kind: str,
    share: list[float] | None,
    width: list[int] | None,
    pattern: list[str] | None,
    mode: list[str] | None,
    defence: list[str] | None,
    pretrain_rounds: int,
    overrides: list[str],
    workers: int,
    out_dir: Path,
    quiet: bool,
) -> None:
    """``--study split|capacity``: one grid point swept over the adversary's share or the model width."""
    from rich.console import Console

    from robustfl.experiment import edge_case as ec
    from robustfl.experiment.table import to_rich

    with user_errors():
        for name, given in (("pattern", pattern), ("mode", mode), ("defence", defence)):
            if given and len(given) > 1:
                raise ValueError(f"--study takes one --{name}, got {len(given)}")
        values: list[float] | list[int] = (
            (share or list(ec.SPLITS)) if kind == "split" else (width or list(ec.WIDTHS))
        )
    point = {
        "pattern": (pattern or ["fixed-pool"])[0],
        "mode": (mode or ["black-box"])[0],
        "defence": (defence or ["none"])[0],
    }
    with user_errors(), runs_progress(len(values), f"edge-case {kind}", quiet) as on_done:
        rows = ec.study(
            out_dir,
            kind,
            values,
            **point,
            pretrain_rounds=pretrain_rounds,
            overrides=overrides,
            workers=workers,
            on_done=on_done,
        )
    title = f"Edge-case backdoor vs {'adversary edge share' if kind == 'split' else 'MLP width'}"
    Console(width=160).print(to_rich(rows, [kind, *ec.COLUMNS], title=title))
    typer.echo(f"table: {out_dir / kind}.md")


reproduce_app.command("edge-case")(edge_case)
app.command("edge-case", help="Alias of `robustfl reproduce edge-case`.")(edge_case)
