"""The ``robustfl`` command. Each submodule adds its commands to ``app`` when imported.

Command modules import their heavy dependencies inside the command functions, so ``robustfl --help``
stays fast.
"""

from robustfl.cli import (  # noqa: F401  (experiment commands)
    attack_matrix,
    bench,
    data,
    demo,
    edge_case,
    launch,
    listing,
    plot,
    reproduce,
    run,
    sweep,
)
from robustfl.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
