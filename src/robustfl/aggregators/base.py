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

    def __call__(self, x: Tensor) -> Tensor:
        x = check_messages(x)
        self.check_n(x.shape[0])
        half = x.dtype in HALF
        # one frame for validation, the thread switch and the call: on the smallest inputs a whole
        # aggregation takes ~20 us, and every extra Python frame or call on this path is measurable
        if x.numel() < self.one_thread_below and x.is_cpu:
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
