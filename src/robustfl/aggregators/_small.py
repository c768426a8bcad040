"""Small inputs run on one intra-op thread.

Below ``SMALL_NUMEL`` elements (8 MiB of float32) each op takes well under a millisecond, so a second
thread saves little, while every parallel op pays a fork/join barrier that, on a busy machine, waits
for a descheduled worker: on the project's shared 2-core machine ``GeometricMedian`` on ``[64, 65536]``
took a few milliseconds on one thread and tens of milliseconds on two while other jobs ran.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators.base import Aggregator

SMALL_NUMEL = 1 << 21


class OneThreadWhenSmall(Aggregator):
    """Mixin: ``__call__`` runs on one intra-op thread when ``x`` has fewer than ``SMALL_NUMEL`` elements.

    The switch is written out here (not ``with single_thread(...)``): on the smallest inputs a whole
    aggregation takes tens of microseconds, and a context manager's frames are a measurable part.
    """

    def __call__(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor) and x.is_cpu and x.numel() < SMALL_NUMEL:
            before = torch.get_num_threads()
            if before != 1:
                torch.set_num_threads(1)
                try:
                    return super().__call__(x)
                finally:
                    torch.set_num_threads(before)
        return super().__call__(x)
