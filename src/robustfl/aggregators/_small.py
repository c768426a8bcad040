"""Small inputs run on one intra-op thread.

Below ``SMALL_NUMEL`` elements (8 MiB of float32) each op takes well under a millisecond, so a second
thread saves little, while every parallel op pays a fork/join barrier that, on a busy machine, waits
for a descheduled worker: on the project's shared 2-core machine ``GeometricMedian`` on ``[64, 65536]``
took a few milliseconds on one thread and tens of milliseconds on two while other jobs ran.
"""

from __future__ import annotations

from torch import Tensor

from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import Aggregator

SMALL_NUMEL = 1 << 21


class OneThreadWhenSmall(Aggregator):
    """Mixin: ``__call__`` runs on one intra-op thread when ``x`` has fewer than ``SMALL_NUMEL`` elements."""

    def __call__(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor) and x.numel() < SMALL_NUMEL:
            with single_thread(x.device):
                return super().__call__(x)
        return super().__call__(x)
