"""Run the tiny ``[n, n]`` stages of a rule on one intra-op thread.

Eigen-decompositions and sorts of a 64 x 64 matrix take well under a millisecond on one core, but
with several OpenMP threads each call pays a fork/join barrier; on a busy machine, where a worker
thread may be descheduled, that barrier costs milliseconds to a hundred (measured: ``eigh`` of a
64 x 64 matrix, 0.6 ms on one thread vs 160 ms on two threads while other jobs ran). The ``[n, d]``
stages before and after keep all threads.
"""

from __future__ import annotations

from types import TracebackType

import torch


class single_thread:  # named like a function: ``with single_thread(x.device):``
    """Within the block, CPU ops use one intra-op thread (CUDA work is unaffected).

    A class rather than a ``@contextmanager`` generator: entering and leaving costs about a quarter as
    much (0.4 us against 1.6 us), which counts on inputs whose whole aggregation takes 20 us.
    """

    __slots__ = ("_before", "_cpu")

    def __init__(self, device: torch.device) -> None:
        self._cpu = device.type == "cpu"
        self._before = 1

    def __enter__(self) -> None:
        if self._cpu:
            self._before = torch.get_num_threads()
            if self._before != 1:
                torch.set_num_threads(1)

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._before != 1:
            torch.set_num_threads(self._before)
