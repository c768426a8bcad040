"""The aggregator contract: ``Tensor[n, d] -> Tensor[d]`` (or ``Tensor[m, d]`` for pre-aggregators).

Subclasses implement ``_aggregate``; ``__call__`` validates the input first, so every rule rejects
wrong shapes, empty input and an ``n`` it cannot serve with one clear ``ValueError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from robustfl.checks import check_int, check_positive
from robustfl.registry import Configurable, Registry

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "PreAggregator",
    "check_int",
    "check_messages",
    "check_positive",
    "require_n",
]


def check_messages(x: Tensor) -> Tensor:
    """Validate a message matrix: a floating ``Tensor[n, d]`` with ``n, d >= 1``."""
    if not isinstance(x, Tensor):
        raise ValueError(f"messages must be a torch.Tensor of shape [n, d], got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(
            f"messages must have shape [n, d] (one flat vector per worker), got {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"messages must be non-empty, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"messages must be floating point (float32, float64, or half), got {x.dtype}")
    return x


HALF = (torch.float16, torch.bfloat16)

SERIAL_ROWS = 64
"""Below ``serial_below`` elements, inputs with at most this many rows run every op on the calling thread
even when more are allowed: torch's elementwise ops and reductions run inline below its grain size of
32,768 elements, and MKL's matrix-vector products (``mv``, ``addmv``, vector @ matrix) stayed on one
thread for up to 64 rows at 16,384 elements (measured through the threads' CPU times; from 128 rows
on MKL used a second thread even at 16,384 elements)."""


def require_n(rule: str, n: int, f: int, ok: bool, bound: str) -> None:
    """Raise the contract's ``ValueError`` naming n, f and the bound when ``ok`` is false."""
    if not ok:
        raise ValueError(f"{rule} needs {bound}, got n={n}, f={f}")


class Aggregator(Configurable, ABC):
    """A rule that maps the ``n`` messages ``x: Tensor[n, d]`` to one ``Tensor[d]``.

    ``breakdown`` states, for ``robustfl list aggregators``, which ``n`` and ``f`` the rule serves.
    Stateful rules (centered clipping, BGMD) keep their memory on the object and clear it in ``reset``.

    Half precision (float16, bfloat16) is computed in float32 and the output cast back: squared norms
    of rows above 256 overflow float16, and CPU kernels for half types are slow or missing. Memory
    that stateful rules keep between calls stays float32.
    """

    breakdown: ClassVar[str] = "-"
    one_thread_below: ClassVar[int] = 0
    """Inputs on CPU with fewer elements than this run on one intra-op thread (``OneThreadWhenSmall``);
    the thread count is restored afterwards."""
    serial_below: ClassVar[int] = 0
    """Inputs with fewer elements than this and at most ``SERIAL_ROWS`` rows skip that switch: set by
    rules whose small path makes no call that starts a parallel region at such sizes (see
    ``SERIAL_ROWS``). The switch itself (three calls into the OpenMP and MKL runtimes) costs a few
    microseconds when caches are cold, a tenth of the smallest aggregations."""

    def __call__(self, x: Tensor) -> Tensor:
        # One frame for validation, the thread switch and the call, with the fewest tensor attribute
        # reads: on the smallest inputs a whole aggregation takes ~20 us, and with cold caches every
        # extra Python frame or binding call on this path costs a measurable fraction of it.
        shape = x.shape if isinstance(x, Tensor) else None
        if (
            shape is None
            or len(shape) != 2
            or not (shape[0] and shape[1])
            or not (dtype := x.dtype).is_floating_point
        ):
            check_messages(x)  # raises the error that names the problem
        n, d = shape
        self.check_n(n)
        half = dtype in HALF
        numel = n * d
        if (
            numel < self.one_thread_below
            and x.is_cpu
            and not (numel < self.serial_below and n <= SERIAL_ROWS)
        ):
            before = torch.get_num_threads()
            if before != 1:
                torch.set_num_threads(1)
                try:
                    return self._aggregate(x.float()).to(x.dtype) if half else self._aggregate(x)
                finally:
                    torch.set_num_threads(before)
        return self._aggregate(x.float()).to(x.dtype) if half else self._aggregate(x)

    def check_n(self, n: int) -> None:
        """Raise ``ValueError`` if this rule cannot serve ``n`` messages."""

    @abstractmethod
    def _aggregate(self, x: Tensor) -> Tensor: ...

    def reset(self) -> None:
        """Forget any memory kept between calls (stateless rules: nothing to do)."""


class PreAggregator(Aggregator):
    """A step that maps ``Tensor[n, d]`` to ``Tensor[m, d]`` (NNM, bucketing, clipping, ARC)."""


AGGREGATORS: Registry[Aggregator] = Registry("aggregator")
