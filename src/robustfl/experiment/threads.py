"""How many torch threads a run uses: a deliberate choice, recorded in the run's provenance.

torch defaults to one intra-op thread per core. For the small models of most robustness experiments
(an MLP or LeNet on MNIST: 10^4-10^5 parameters) the work of one op is far too small to split, and the
threads mostly wait for each other: docs/RESULTS.md ("Threads") measures 1 thread against torch's default
on the demo. So the default is:

* ``training.threads`` / ``--threads`` when given;
* else ``OMP_NUM_THREADS`` when the user exported it;
* else 1 thread for a model under :data:`LARGE_MODEL` parameters, and the run's share of the cores
  (cores / concurrent runs, e.g. a sweep's ``--workers``) for larger models.
"""

from __future__ import annotations

import os

LARGE_MODEL = 1_000_000  # parameters; below this one thread is fastest (docs/RESULTS.md, "Threads")


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` when it is a positive integer, else None."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def choose_threads(
    num_parameters: int | None,
    *,
    requested: int | None = None,
    concurrent: int = 1,
    cores: int | None = None,
) -> tuple[int, str]:
    """``(threads, reason)`` for one run; ``concurrent`` runs share the machine's cores."""
    if requested is not None:
        return requested, "requested (--threads or training.threads)"
    from_env = env_threads()
    if from_env is not None:
        return from_env, "OMP_NUM_THREADS"
    share = max(1, (cores or available_cores()) // max(1, concurrent))
    if num_parameters is None or num_parameters < LARGE_MODEL:
        return 1, f"model under {LARGE_MODEL:,} parameters: 1 thread"
    return share, f"model of {num_parameters:,} parameters: cores / concurrent runs = {share}"
