"""Run the tiny ``[n, n]`` stages of a rule on one intra-op thread.

Eigen-decompositions and sorts of a 64 x 64 matrix take well under a millisecond on one core, but
with several OpenMP threads each call pays a fork/join barrier; on a busy machine, where a worker
thread may be descheduled, that barrier costs milliseconds to a hundred (measured: ``eigh`` of a
64 x 64 matrix, 0.6 ms on one thread vs 160 ms on two threads while other jobs ran). The ``[n, d]``
stages before and after keep all threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread(device: torch.device) -> Iterator[None]:
    """Within the block, CPU ops use one intra-op thread (CUDA work is unaffected)."""
    before = torch.get_num_threads()
    if device.type != "cpu" or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
