"""``robustfl attack-matrix``: robust aggregators x message attacks on real gradients."""

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli.app import app


@app.command("attack-matrix")
def attack_matrix(
    quick: Annotated[
        bool, typer.Option("--quick", help="One round at a less trained point (seconds).")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to save the heatmap PNG (default runs/attack-matrix-<time>/)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Root seed: data split, minibatches, attacks.")] = 0,
    clients: Annotated[
        int | None, typer.Option("--clients", help="Clients n (default 20; 15 with --quick); f = 20% of n.")
    ] = None,
    only_rules: Annotated[
        list[str] | None, typer.Option("--rule", help="Only this aggregator (repeatable; default: all).")
    ] = None,
    only_attacks: Annotated[
        list[str] | None,
        typer.Option("--attack", help="Only this message attack (repeatable; default: all)."),
    ] = None,
) -> None:
    """Print ||agg - honest mean|| / honest spread for every aggregator under every attack; save a heatmap."""
    from robustfl.cli._output import console as make_console
    from robustfl.cli.run import default_out
    from robustfl.experiment.attack_matrix import render_table, run_attack_matrix, save_heatmap

    console = make_console()
    try:
        with console.status("measuring") as status:
            result = run_attack_matrix(
                quick=quick,
                seed=seed,
                n_clients=clients,
                rules=only_rules or None,
                attacks=only_attacks or None,
                progress=lambda name: status.update(f"measuring {name}"),
            )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    # the table is wider than a standard terminal: let it overflow rather than ellipsise every cell
    needed = 4 + max(map(len, result.rules), default=10) + sum(max(len(a), 7) + 3 for a in result.attacks)
    wide = make_console(width=max(console.width, needed))
    wide.print(render_table(result))
    for rule, why in result.notes.items():
        wide.print(f"[yellow]{rule}: skipped ({why})[/yellow]")
    path = out or default_out("attack-matrix") / "attack_matrix.png"
    console.print(f"heatmap saved to {save_heatmap(result, path)}")
