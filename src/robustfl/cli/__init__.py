"""The ``robustfl`` command. Each submodule adds its commands to ``app`` when imported.

Command modules import their heavy dependencies inside the command functions, so ``robustfl --help``
stays fast. :func:`main` is the last resort: an error no command turned into a message becomes one line
and exit status 1, with a hint to rerun with ``--debug`` for the traceback.
"""

import sys

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
from robustfl.cli.app import DEBUG_ENV, app, debug_enabled


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        print("robustfl: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        if debug_enabled():
            raise
        text = (str(err).strip().splitlines() or [""])[0]
        print(
            f"robustfl: internal error: {type(err).__name__}: {text} (rerun with --debug or {DEBUG_ENV}=1 "
            f"for the full traceback, and please report it)",
            file=sys.stderr,
        )
        sys.exit(1)


__all__ = ["app", "main"]
