"""``robustfl edge-case``: edge-case backdoor attacks against the chapter's defences (Wang et al. 2020, Attack of the Tails)."""

from typing import Annotated

import typer

from robustfl.cli.app import app


@app.command("edge-case")
def edge_case(
    quick: Annotated[
        bool, typer.Option("--quick", help="Two modes, two defences, 3 rounds (seconds).")
    ] = False,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="FedAvg rounds per run.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Root seed.")] = 0,
) -> None:
    """Main-task and backdoor accuracy of FedAvg on MNIST under black-box / PGD / PGD+replacement attacks."""
    from rich.table import Table

    from robustfl.cli._output import console as make_console
    from robustfl.experiment.edge_case import DEFENCES, MODES, run_grid

    modes, defences = (("none", "pgd-mr"), ("none", "ndc")) if quick else (MODES, DEFENCES)
    console = make_console()
    with console.status("running") as status:
        results = run_grid(
            modes,
            defences,
            progress=lambda s: status.update(f"running {s}"),
            rounds=3 if quick else rounds,
            seed=seed,
        )
    table = Table(
        title="Edge-case backdoor: main accuracy / backdoor accuracy / parity (10 clients, 2 attackers)"
    )
    table.add_column("attack")
    for d in defences:
        table.add_column(d, justify="right")
    for mode in modes:
        cells = [
            f"{r.main_accuracy:.3f} / {r.backdoor_accuracy:.3f} / {r.parity:.2f}"
            for r in results
            if r.mode == mode
        ]
        table.add_row(mode, *cells)
    make_console(width=max(console.width, 16 + 25 * len(defences))).print(table)
