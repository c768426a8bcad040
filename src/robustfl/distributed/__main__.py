"""The entry point torchrun starts on each rank: a supervisor around the real rank process.

torchrun's agent tears the whole group down when any process it started fails, the wrong model when
workers may crash. So each started process runs the rank (``robustfl.distributed.rank``) as its child:
a worker rank's child that dies is reported and the supervisor exits 0, so the server carries on
without it; rank 0's exit status is passed on. Signals from torchrun (SIGTERM, SIGINT) are forwarded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main() -> int:
    rank = int(os.environ.get("RANK", "0"))
    child = subprocess.Popen([sys.executable, "-m", "robustfl.distributed.rank", *sys.argv[1:]])

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    code = child.wait()
    if rank == 0 or code == 0:
        return 0 if code == 0 else (code if code > 0 else 128 - code)
    print(
        f"robustfl launch: worker rank {rank} exited with status {code}; the server carries on without it",
        file=sys.stderr,
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
