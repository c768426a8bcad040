"""``robustfl partition``: preview how a data set is split across clients."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._output import console
from robustfl.cli.app import app


@app.command()
def partition(
    dataset: Annotated[str, typer.Option(help="data set name (see docs/data.md)")] = "embedded-mnist",
    data_dir: Annotated[Path | None, typer.Option(help="folder holding the data files")] = None,
    clients: Annotated[int, typer.Option(help="number of clients")] = 10,
    scheme: Annotated[str, typer.Option(help="iid, dirichlet, shards, labels, crsa or natural")] = "iid",
    alpha: Annotated[float | None, typer.Option(help="dirichlet concentration")] = None,
    min_size: Annotated[int | None, typer.Option(help="dirichlet/natural: smallest client size")] = None,
    shards_per_client: Annotated[int | None, typer.Option(help="shards per client")] = None,
    labels_per_client: Annotated[int | None, typer.Option(help="labels per client (scheme labels)")] = None,
    size_skew: Annotated[float | None, typer.Option(help="iid: power-law exponent of client sizes")] = None,
    own_fraction: Annotated[
        float | None, typer.Option(help="crsa: share of each label kept by its worker")
    ] = None,
    seed: Annotated[int, typer.Option(help="root seed")] = 0,
) -> None:
    """Print each client's sample count and label histogram for a partition scheme."""
    from robustfl.data import load_dataset, partition_summary
    from robustfl.data import partition as split
    from robustfl.utils import make_generator

    given = {
        "alpha": alpha,
        "min_size": min_size,
        "shards_per_client": shards_per_client,
        "labels_per_client": labels_per_client,
        "size_skew": size_skew,
        "own_fraction": own_fraction,
    }
    options: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    try:
        ds = load_dataset(dataset, data_dir)
        if scheme == "natural":
            options["groups"] = ds.groups_train
        parts = split(ds.y_train, clients, scheme, generator=make_generator(seed, "partition"), **options)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console().print(partition_summary(parts, ds.y_train, ds.num_classes))
