"""Small inputs run on one intra-op thread.

Below ``SMALL_NUMEL`` elements (8 MiB of float32) each op takes well under a millisecond, so a second
thread saves little, while every parallel op pays a fork/join barrier that, on a busy machine, waits
for a descheduled worker: on the project's shared 2-core machine ``GeometricMedian`` on ``[64, 65536]``
took a few milliseconds on one thread and tens of milliseconds on two while other jobs ran.
"""

from __future__ import annotations

from robustfl.aggregators.base import Aggregator

SMALL_NUMEL = 1 << 21

SERIAL_NUMEL = 1 << 14
"""``serial_below`` for rules whose small path is elementwise ops, row norms, NumPy on ``[n]`` vectors
and matrix-vector products: at most ``SERIAL_ROWS`` rows and fewer elements than this run on one
thread whatever the thread setting (``robustfl.aggregators.base.SERIAL_ROWS``)."""


class OneThreadWhenSmall(Aggregator):
    """Mixin: ``__call__`` runs on one intra-op thread when ``x`` has fewer than ``SMALL_NUMEL`` elements.

    The switch itself lives in ``Aggregator.__call__`` (``one_thread_below``), so validation, the switch
    and the rule run in one Python frame (a ``super().__call__`` chain cost 2-5 us per call when caches
    are cold, a fifth of the smallest aggregations)."""

    one_thread_below = SMALL_NUMEL
