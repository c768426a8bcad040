"""The ``robustfl`` command. Each submodule adds its commands to ``app`` when imported.

Command modules import their heavy dependencies inside the command functions, so ``robustfl --help``
stays fast.
"""

from robustfl.cli import data  # noqa: F401  (registers `robustfl partition`)
from robustfl.cli import listing  # noqa: F401  (registers `robustfl list`)
from robustfl.cli import attack_matrix  # noqa: F401  (registers `robustfl attack-matrix`)
from robustfl.cli import demo, plot, reproduce, run, sweep  # noqa: F401  (experiment commands)
from robustfl.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
