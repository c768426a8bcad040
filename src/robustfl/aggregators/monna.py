"""Mean of the nearest neighbours of a trusted row (MoNNA; Farhadkhani et al., ICML 2022)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._small import SERIAL_NUMEL, OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n

BLOCK_NUMEL = 1 << 18
"""Elements of ``x - ref`` formed at a time (1 MiB of float32, in L2 cache)."""


def distances_to_row(x: Tensor, ref: Tensor) -> Tensor:
    """``||x_i - ref||`` from exact row differences (no cancellation when rows share a large common
    part), formed in column blocks of about ``BLOCK_NUMEL`` elements instead of one ``[n, d]``
    temporary; a single block (small inputs) is one ``vector_norm`` of ``x - ref``."""
    n, d = x.shape
    width = max(1, BLOCK_NUMEL // n)
    if width >= d:
        return torch.linalg.vector_norm(x - ref, dim=1)
    acc = torch.zeros(n, dtype=x.dtype, device=x.device)
    for a in range(0, d, width):
        acc += torch.linalg.vector_norm(x[:, a : a + width] - ref[a : a + width], dim=1).square()
    return acc.sqrt_()


def nearest_weights(dist: np.ndarray, k: int) -> Tensor | None:
    """Weights ``[n]``: ``1 / k`` on the ``k`` smallest distances (ties to the lower index), 0 elsewhere;
    ``None`` when a distance is not finite (the caller's general path handles NaN rows and a bad
    reference row). NumPy on the ``[n]`` distances: the torch calls it replaces (sort, zeros, an
    indexed write, finiteness checks) cost 2-8 us each, most of the time at ``n = 16, d = 10^3``."""
    if not math.isfinite(dist.max()):  # max propagates NaN and Inf
        return None
    weights = np.zeros(dist.shape[0], dtype=dist.dtype)
    weights[np.argsort(dist, kind="stable")[:k]] = 1.0 / k
    return torch.from_numpy(weights)


@AGGREGATORS.register("monna")
class MoNNA(OneThreadWhenSmall):
    """Average the ``n - f`` rows nearest (Euclidean) to the reference row ``x_idx``, itself included.

    ByzFL's definition and parameters: ``idx`` names a worker the server trusts (e.g. its own
    gradient); robustness holds when that row is honest. Ties in distance go to the lower row index.
    Non-finite rows are infinitely far, so with at most ``f`` of them none is averaged. If ``x_idx``
    itself is non-finite (the trust assumption is broken), distances to it are undefined and the
    reference becomes the coordinate-wise median of the rows (NaN sorted last), which keeps the output
    finite.
    """

    breakdown = "needs n > 2f and an honest reference row idx"
    serial_below = SERIAL_NUMEL  # its small path: elementwise ops, row norms, NumPy and one mv per step

    def __init__(self, f: int = 0, idx: int = 0) -> None:
        self.f = check_int("f", f)
        self.idx = check_int("idx", idx)

    def check_n(self, n: int) -> None:
        require_n("MoNNA", n, self.f, n > 2 * self.f, "n > 2f")
        if self.idx >= n:
            raise ValueError(f"MoNNA needs idx < n (idx names one of the n rows), got idx={self.idx}, n={n}")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        data = x.detach() if x.requires_grad else x  # distances only select rows
        ref = data[self.idx]
        dist = distances_to_row(data, ref)
        if x.is_cpu:
            weights = nearest_weights(dist.numpy(), n - self.f)
            if weights is not None:
                return weights @ x
        if not bool(torch.isfinite(ref).all()):
            ref = torch.sort(data, dim=0).values[(n - 1) // 2]
            dist = distances_to_row(data, ref)
        finite = bool(torch.isfinite(dist).all())
        with single_thread(x.device):
            dist = torch.nan_to_num(dist, nan=float("inf"))
            nearest = torch.sort(dist, stable=True).indices[: n - self.f]
            weights = torch.zeros(n, dtype=x.dtype, device=x.device)
            weights[nearest] = 1.0 / (n - self.f)
        if not finite:  # 0 * NaN is NaN: take the chosen rows instead of weighting all of them
            return x.index_select(0, nearest).mean(dim=0)
        return weights @ x
