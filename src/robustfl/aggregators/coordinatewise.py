"""Coordinate-wise order statistics: the median (CM) and the trimmed mean (CTM).

Both need, per coordinate, the values at some sorted positions of its ``n`` entries, i.e. a sort
along ``n`` of every column. ``torch.sort(dim=0)`` / ``torch.median(dim=0)`` on ``[n, d]`` pay for
``d`` tiny strided sorts; instead we copy cache-sized column blocks to a transposed, contiguous
``[w, n]`` buffer and sort its rows. On CPU (float32/float64, no autograd) the rows are sorted by
NumPy, whose AVX-512/AVX2 sorting kernels (x86-simd-sort) sort a short row of floats many times
faster than torch's sort (CPU time on one thread: ``[64, 1000]`` 0.12 ms against 0.94 ms for
``torch.median(dim=0)``, ``[500, 199210]`` 0.31 s against 1.49 s; see ``docs/RESULTS.md``); elsewhere
(other devices, inputs that need gradients) ``torch.sort`` sorts the same blocks. Every path returns
the exact sorted values, so the rules built on them (Median, TrimmedMean, Meamed, Bulyan) give the
same bits whichever path runs, and equal their sort-based definitions.

Non-finite values: NaN counts as +inf (both sorts put NaN last, and a NaN that reaches an output
position is returned as +inf), so a Byzantine NaN/Inf/1e38 entry is an extreme value that lands in
the tails these rules discard.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n

BLOCK_NUMEL = 1 << 16
"""Elements per column block (256 KiB of float32: the transposed copy and its sort stay in cache)."""

_NUMPY_DTYPES = (torch.float32, torch.float64)


def order_statistics(x: Tensor, lo: int, hi: int) -> Tensor:
    """``[hi - lo, d]``: per coordinate, the values at sorted positions ``lo..hi-1`` of its ``n`` entries.

    Exactly ``torch.where(isnan(x), inf, x).sort(dim=0).values[lo:hi]``, computed block by block over
    columns: each ``[n, w]`` block (about ``BLOCK_NUMEL`` elements) is copied to a contiguous
    ``[w, n]`` buffer, its rows sorted (NumPy on CPU for float32/float64 without autograd, else
    ``torch.sort``; one block on other devices) and positions ``lo..hi-1`` written out. Memory: the
    output plus one block.
    """
    if _numpy_path(x):
        out = torch.empty(hi - lo, x.shape[1], dtype=x.dtype)
        dst = out.numpy()
        for a, cols in _numpy_sorted_blocks(x):
            dst[:, a : a + cols.shape[0]] = cols[:, lo:hi].T
    else:
        out = _torch_sorted_blocks(x, lo, hi)
    if bool(torch.isnan(out).any()):
        out = out.masked_fill(torch.isnan(out), float("inf"))
    return out


def coordinate_median(x: Tensor) -> Tensor:
    """``[d]``: per coordinate the middle sorted value (odd ``n``) or the mean ``a/2 + b/2`` of the two
    middle ones (even ``n``), NaN counting as +inf: ``mean_of_rows(order_statistics(x, (n-1)//2,
    n//2 + 1))`` bit for bit, with the halving and adding done per block on the NumPy path (no
    ``[2, d]`` intermediate, fewer calls: this is what small inputs pay for)."""
    n = x.shape[0]
    lo, hi = (n - 1) // 2, n // 2
    if not _numpy_path(x):
        return mean_of_rows(order_statistics(x, lo, hi + 1))
    out = torch.empty(x.shape[1], dtype=x.dtype)
    dst = out.numpy()
    for a, cols in _numpy_sorted_blocks(x):
        low, high = cols[:, lo], cols[:, hi]
        if np.isnan(high).any():  # NaN sorts last, so a NaN in ``low`` is one in ``high`` too
            low, high = np.where(np.isnan(low), np.inf, low), np.where(np.isnan(high), np.inf, high)
        part = dst[a : a + cols.shape[0]]
        if lo == hi:
            part[:] = low
        else:
            np.add(low * 0.5, high * 0.5, out=part)
    return out


def _numpy_path(x: Tensor) -> bool:
    """Whether ``x`` is sorted by NumPy: float32/float64 on CPU, no autograd."""
    return x.device.type == "cpu" and x.dtype in _NUMPY_DTYPES and not x.requires_grad


def _block_width(x: Tensor) -> int:
    """Columns per block: about ``BLOCK_NUMEL`` elements (in cache) on CPU, all of them elsewhere."""
    if x.device.type != "cpu":
        return x.shape[1]
    return max(1, BLOCK_NUMEL // x.shape[0])


def _numpy_sorted_blocks(x: Tensor) -> Iterator[tuple[int, np.ndarray]]:
    """``(a, cols)`` per column block: ``cols[j]`` is column ``a + j`` of ``x`` sorted (NaN last)."""
    src = x.detach().numpy()
    width = _block_width(x)
    for a in range(0, x.shape[1], width):
        cols = src[:, a : a + width].T.copy()  # always a copy (ascontiguousarray returns a view
        cols.sort(axis=1)  # when the block is one column), so sorting never writes into x
        yield a, cols


def _torch_sorted_blocks(x: Tensor, lo: int, hi: int) -> Tensor:
    """The torch path of ``order_statistics``: differentiable, and on any device (NaN as +inf)."""
    width = _block_width(x)
    blocks = []
    for a in range(0, x.shape[1], width):
        cols = x[:, a : a + width].T.contiguous()
        cols = torch.where(torch.isnan(cols), float("inf"), cols)
        blocks.append(cols.sort(dim=1).values[:, lo:hi].T)
    if len(blocks) == 1:
        return blocks[0].contiguous()
    return torch.cat(blocks, dim=1)


def mean_of_rows(rows: Tensor) -> Tensor:
    """Row mean of ``[m, d]``; for two rows ``a/2 + b/2`` so two huge honest values cannot overflow."""
    if rows.shape[0] == 2:
        return rows[0] * 0.5 + rows[1] * 0.5
    return rows.mean(dim=0)


@AGGREGATORS.register("median", "cm")
class Median(OneThreadWhenSmall):
    """Coordinate-wise median, seed 000 §"Univariate/Multivariate Robust Gradient Aggregation" (CM).

    ``out[k] = median(x_1[k], ..., x_n[k])``: the ``(n+1)/2``-th order statistic for odd ``n``; for
    even ``n`` the mean of the ``n/2``-th and ``n/2+1``-th (as the seed and ByzFL's ``Median``).

    Non-finite rows: NaN counts as +inf, so with fewer than half of a coordinate's values bad the
    middle order statistics are honest values and the output is finite.
    """

    breakdown = "fewer than n/2 Byzantine rows (breakdown 1/2)"

    def _aggregate(self, x: Tensor) -> Tensor:
        return coordinate_median(x)


@AGGREGATORS.register("trimmed-mean", "trmean")
class TrimmedMean(OneThreadWhenSmall):
    """Coordinate-wise trimmed mean (CTM; ByzFL ``TrMean``), seed 000 Table 1, Yin et al. 2018.

    ``out[k] = (1/(n-2f)) sum_{j=f+1}^{n-f} x_(j)[k]`` where ``x_(j)[k]`` is the ``j``-th smallest
    value of coordinate ``k``: the ``f`` largest and ``f`` smallest values are dropped. Needs
    ``n > 2f``; ``f = 0`` is the mean.

    Non-finite rows: NaN counts as +inf and ±Inf sort into the tails, so with at most ``f`` bad rows
    every kept value is honest and the output is finite.
    """

    breakdown = "n > 2f"

    def __init__(self, f: int = 0) -> None:
        self.f = check_int("f", f)

    def check_n(self, n: int) -> None:
        require_n("TrimmedMean", n, self.f, n > 2 * self.f, "n > 2f")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        if self.f == 0:
            return x.mean(dim=0)
        return mean_of_rows(order_statistics(x, self.f, n - self.f))
