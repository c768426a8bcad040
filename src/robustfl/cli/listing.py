"""``robustfl list KIND``: the registered components of one kind, their parameters and bounds."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import typer

from robustfl.cli.app import app
from robustfl.cli.run import ImportOption

# kind -> "module:attribute" of its Registry; adding a kind is one entry here.
KINDS: dict[str, str] = {
    "aggregators": "robustfl.aggregators:AGGREGATORS",
    "compressors": "robustfl.compressors:COMPRESSORS",
    "models": "robustfl.models:MODELS",
    "datasets": "robustfl.data:DATASETS",
    "attacks": "robustfl.attacks:ATTACKS",
    "data-attacks": "robustfl.attacks.data:DATA_ATTACKS",
    "algorithms": "robustfl.algorithms:ALGORITHMS",
    "server-optimizers": "robustfl.algorithms.optim:SERVER_OPTIMIZERS",
    "lr-schedules": "robustfl.algorithms.schedules:LR_SCHEDULES",
    "codings": "robustfl.coding:CODINGS",
}


def registry_for(kind: str) -> Any:
    """The ``Registry`` listed as ``kind`` (imported only when asked for)."""
    if kind not in KINDS:
        raise typer.BadParameter(f"unknown kind {kind!r}; choose one of: {', '.join(sorted(KINDS))}")
    module, attribute = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), attribute)


def describe_parameters(params: dict[str, Any]) -> str:
    """``f=0, m=None, neighbours='byzfl'``; a parameter without default shows just its name."""
    return ", ".join(
        name if default is inspect.Parameter.empty else f"{name}={default!r}"
        for name, default in params.items()
    )


def rows(registry: Any) -> list[tuple[str, str, str, str]]:
    """One row per component: (names, class, parameters, breakdown); aliases share a row."""
    grouped: dict[int, list[str]] = {}
    factories: dict[int, Any] = {}
    for name in registry.names():
        factory = registry[name]
        grouped.setdefault(id(factory), []).append(name)
        factories[id(factory)] = factory
    out = []
    for key, names in grouped.items():
        factory = factories[key]
        out.append(
            (
                ", ".join(names),
                getattr(factory, "__name__", str(factory)),
                describe_parameters(registry.parameters(names[0])) or "-",
                str(getattr(factory, "breakdown", "-")),
            )
        )
    return sorted(out)


@app.command("list")
def list_components(
    kind: str = typer.Argument(..., help=f"what to list: {', '.join(sorted(KINDS))}"),
    imports: ImportOption = None,
) -> None:
    """List the registered components of KIND with their parameters (defaults) and breakdown bounds,
    installed plugins (entry points robustfl.plugins) and --import modules included."""
    from rich.table import Table

    from robustfl.cli._errors import user_errors
    from robustfl.cli._output import console
    from robustfl.registry import import_modules, load_plugins

    with user_errors():
        import_modules(imports or [], "--import")
    load_plugins()

    table = Table(title=f"robustfl {kind}")
    for column in ("name", "class", "parameters (defaults)", "breakdown"):
        table.add_column(column)
    for row in rows(registry_for(kind)):
        table.add_row(*row)
    console().print(table)
