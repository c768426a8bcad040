"""The ``robustfl`` command. Each submodule adds its commands to ``app`` when imported.

Command modules import their heavy dependencies inside the command functions, so ``robustfl --help``
stays fast.
"""

<<<<<<< HEAD
from robustfl.cli import data  # noqa: F401  (registers `robustfl partition`)
=======
from robustfl.cli import listing  # noqa: F401  (registers `robustfl list`)
>>>>>>> agg-core
from robustfl.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
