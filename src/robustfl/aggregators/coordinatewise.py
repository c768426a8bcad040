"""Coordinate-wise order statistics: the median (CM) and the trimmed mean (CTM).

Both need, per coordinate, the values at some sorted positions of its ``n`` entries. On CPU with
``n <= 128`` they come from a *sorting network* run on whole rows: each compare-exchange is one
``torch.minimum`` and one ``torch.maximum`` over ``d`` contiguous values, and comparators that cannot
change the wanted positions are pruned. On CPU that is several times faster than ``torch.sort`` along
``n``, whose kernels pay for ``d`` tiny sorts. On other devices, and for larger ``n``, the two middle
values come from ``torch.median`` (a selection) and other positions from sorts of transposed column
blocks that fit in cache (``order_statistics``).

Non-finite values: torch sorts NaN above +inf, and the network path maps NaN to +inf whenever a NaN
would otherwise reach an output, so a Byzantine NaN/Inf/1e38 entry is an extreme value that lands in
the tails these rules discard.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n

NETWORK_MAX_N = 128
"""Above this ``n`` (and on other devices) selection or blocked sorts replace the sorting network: its
comparator count grows as ``n log^2 n`` (measured on one thread at d = 65,536: about as fast as
``torch.median`` at n = 128, twice as slow at n = 256)."""

BLOCK_NUMEL = 1 << 16
"""Elements per column block in the blocked paths (256 KiB of float32: the transposed copy, its sort
and the output stay in cache)."""


@cache
def batcher_network(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort network for ``n`` wires, comparators ``(i, j)`` with ``i < j``.

    Built for the next power of two; comparators touching wires ``>= n`` are dropped, which is exact
    because those padding wires would hold +inf, the maximum, and never move.
    """
    p = 1
    while p < n:
        p *= 2
    comparators = []
    t = 1
    while t < p:
        k = t
        while k >= 1:
            j = k % t
            while j + k < p:
                for i in range(min(k, p - j - k)):
                    a, b = i + j, i + j + k
                    if a // (2 * t) == b // (2 * t) and b < n:
                        comparators.append((a, b))
                j += 2 * k
            k //= 2
        t *= 2
    return tuple(comparators)


@cache
def pruned_network(n: int, lo: int, hi: int, exact: bool) -> tuple[tuple[int, int], ...]:
    """The comparators of ``batcher_network(n)`` that can affect sorted positions ``lo..hi-1``.

    With ``exact=False`` only the multiset of those positions' values is wanted (a sum or mean), so a
    comparator whose two outputs both end up in that set, untouched afterwards, is dropped too.
    """
    exact_wires: set[int] = set(range(lo, hi)) if exact else set()
    set_wires: set[int] = set() if exact else set(range(lo, hi))
    kept = []
    for a, b in reversed(batcher_network(n)):
        if a in set_wires and b in set_wires:
            continue
        if a in exact_wires or b in exact_wires or a in set_wires or b in set_wires:
            kept.append((a, b))
            set_wires -= {a, b}
            exact_wires |= {a, b}
    return tuple(reversed(kept))


def _run_network(rows: list[Tensor], comparators: tuple[tuple[int, int], ...]) -> None:
    """Apply the comparators in place on the list of rows, on one intra-op thread: hundreds of
    memory-bound ``d``-length ops gain little from a second thread but would each pay its barrier."""
    with single_thread(rows[0].device):
        for a, b in comparators:
            ra, rb = rows[a], rows[b]
            rows[a], rows[b] = torch.minimum(ra, rb), torch.maximum(ra, rb)


def order_statistics(x: Tensor, lo: int, hi: int, exact: bool = True) -> Tensor:
    """``[hi - lo, d]``: per coordinate, the values at sorted positions ``lo..hi-1`` of its ``n`` entries.

    With ``exact=False`` the rows hold those values per coordinate in some order (enough for a sum).
    NaN counts as +inf in every path. The path is chosen by ``n`` (all give the same values):

    * CPU, ``n <= NETWORK_MAX_N``: the pruned sorting network over whole rows;
    * the two middle positions for larger ``n``: ``torch.median`` along ``n`` (a selection, O(n) per
      coordinate, instead of a sort), the upper middle value from one more pass (``_middle_pair``);
    * anything else: a sort of transposed column blocks that fit in cache (``_sorted_blocks``).
    """
    n = x.shape[0]
    if x.device.type == "cpu" and n <= NETWORK_MAX_N:
        return _network_statistics(x, lo, hi, exact)
    if lo == (n - 1) // 2 and hi - lo <= 2 and hi <= n // 2 + 1:
        return _middle_pair(x, hi - lo)
    return _sorted_blocks(x, lo, hi)


def _network_statistics(x: Tensor, lo: int, hi: int, exact: bool) -> Tensor:
    comparators = pruned_network(x.shape[0], lo, hi, exact)
    rows = list(x.unbind(0))
    _run_network(rows, comparators)
    out = torch.stack(rows[lo:hi])
    if bool(torch.isnan(out).any()):
        # NaN makes min/max return NaN on both wires; as +inf it sorts last, like torch.sort's NaN.
        rows = list(torch.where(torch.isnan(x), float("inf"), x).unbind(0))
        _run_network(rows, comparators)
        out = torch.stack(rows[lo:hi])
    return out


def _block_width(x: Tensor) -> int:
    """Columns per block: about ``BLOCK_NUMEL`` elements (in cache) on CPU, all of them elsewhere."""
    if x.device.type != "cpu":
        return x.shape[1]
    return max(1, BLOCK_NUMEL // x.shape[0])


def _middle_pair(x: Tensor, count: int) -> Tensor:
    """Sorted positions ``(n-1)//2`` (and, with ``count = 2``, the next one) per column.

    ``torch.median`` returns the lower middle value ``m`` by selection. The next sorted value is
    ``m`` again when at least ``(n-1)//2 + 2`` entries are ``<= m``, else the smallest entry above
    ``m``; both come from one pass over column blocks. NaN propagates through ``torch.median``, so
    columns holding NaN are redone with NaN as +inf.
    """
    n = x.shape[0]
    k = (n - 1) // 2
    low = x.median(dim=0).values
    nan = torch.isnan(low)
    if bool(nan.any()):
        cols = nan.nonzero().squeeze(1)
        fixed = torch.nan_to_num(
            x.index_select(1, cols), nan=float("inf"), posinf=float("inf"), neginf=float("-inf")
        )
        low[cols] = fixed.median(dim=0).values
        x = x.clone()
        x[:, cols] = fixed
    if count == 1:
        return low.unsqueeze(0)
    out = torch.empty(2, x.shape[1], dtype=x.dtype, device=x.device)
    out[0] = low
    width = _block_width(x)
    for a in range(0, x.shape[1], width):
        block, m = x[:, a : a + width], low[a : a + width]
        at_most = (block <= m).sum(dim=0)
        above = torch.where(block > m, block, float("inf")).amin(dim=0)
        out[1, a : a + width] = torch.where(at_most >= k + 2, m, above)
    return out


def _sorted_blocks(x: Tensor, lo: int, hi: int) -> Tensor:
    """Sort each block of columns along ``n`` in a transposed ``[w, n]`` copy that fits in cache
    (NaN as +inf) and keep positions ``lo..hi-1``: no ``[d, n]`` copy, values or indices, of all of
    ``x`` at once."""
    out = torch.empty(hi - lo, x.shape[1], dtype=x.dtype, device=x.device)
    width = _block_width(x)
    for a in range(0, x.shape[1], width):
        cols = x[:, a : a + width].T.contiguous()
        cols = torch.where(torch.isnan(cols), float("inf"), cols)
        out[:, a : a + width] = cols.sort(dim=1).values[:, lo:hi].T
    return out


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
        n = x.shape[0]
        return mean_of_rows(order_statistics(x, (n - 1) // 2, n // 2 + 1, exact=False))


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
        return mean_of_rows(order_statistics(x, self.f, n - self.f, exact=False))
