"""Bulyan (El Mhamdi, Guerraoui and Rouault, 2018): iterated Krum, then a coordinate-wise trim."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._distances import pairwise_sq_distances
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n
from robustfl.aggregators.coordinatewise import mean_of_rows, order_statistics
from robustfl.aggregators.krum import Neighbours, check_neighbours, neighbour_count


def iterated_krum(dist: Tensor, f: int, theta: int, neighbours: Neighbours) -> Tensor:
    """Indices of ``theta`` rows chosen one at a time by Krum on the rows not chosen yet.

    Each step scores the remaining ``r`` rows on the remaining submatrix of ``dist`` (no new distances)
    with ``neighbour_count(r, f, neighbours)`` neighbours, but at least one while ``r >= 2``: with zero
    neighbours every score would be 0 and the pick would fall to the lowest index, possibly a NaN row
    (this happens in the last steps with ``neighbours="paper"`` and ``f = 1``). It takes the lowest
    score (lowest index on ties).

    Incremental: ``dist``'s rows are sorted once, and every row keeps the running sum of its first
    ``m`` entries still alive (``m`` = neighbours + 1, itself included) and the position of the last
    one. Removing the chosen row's column takes its entry out of the sums that hold it and, where the
    count must shrink, the last counted entry; so a step costs ``O(n)`` instead of a sort of the
    ``r x r`` submatrix (``O(n^2)`` in all after the one sort; n = 1024 in tens of milliseconds, not
    seconds). The sums are kept in double-double arithmetic (``_Sums``: error-free additions), so a
    score is the exact sum of its entries rounded once, whatever order entries came and went: rows
    with the same entries (mutual nearest neighbours, duplicate rows) tie exactly, as in a fresh sort.
    Infinite entries (unusable rows) are counted apart, so a sum never meets ``inf - inf``.
    """
    n = dist.shape[0]
    dev = dist.device
    need = [max(neighbour_count(r, f, neighbours), min(1, r - 1)) + 1 for r in range(n, n - theta, -1)]
    order = dist.sort(dim=1, stable=True)
    vals, cols = order.values, order.indices
    rows = torch.arange(n, device=dev)
    rank = torch.empty_like(cols).scatter_(1, cols, rows.expand(n, n))  # rank[i, c]: c's position in row i
    alive = torch.ones(n, n, dtype=torch.bool, device=dev)  # alive[i, j]: cols[i, j] not chosen yet
    infinite = torch.isinf(vals)
    finite_vals = torch.where(infinite, 0.0, vals)
    m = need[0]
    q = torch.full((n,), m - 1, dtype=torch.long, device=dev)  # position of the last counted entry
    total = _Sums(n, vals.dtype, dev)
    for j in range(m):
        total.add(finite_vals[:, j])
    n_inf = infinite[:, :m].sum(dim=1)
    free = torch.ones(n, dtype=torch.bool, device=dev)  # rows not chosen yet
    chosen = []
    for step in range(theta):
        score = torch.where(n_inf > 0, float("inf"), total.value())
        pick = int(
            torch.argmin(
                torch.where(free, score, float("nan")).nan_to_num(nan=float("inf"), posinf=float("inf"))
            )
        )
        if not bool(free[pick]):  # every remaining score is +inf: the lowest remaining index
            pick = int(free.nonzero()[0])
        chosen.append(pick)
        if step == theta - 1:
            break
        free[pick] = False
        at = rank[:, pick]
        alive[rows, at] = False
        held = at <= q
        total.add(-torch.where(held, finite_vals[rows, at], 0.0))
        n_inf -= (held & infinite[rows, at]).long()
        count = torch.full_like(q, m) - held.long()
        q = _back_to_alive(alive, q, held & (at == q))
        m = need[step + 1]
        while bool((count > m).any()):  # drop the last counted entry
            drop = count > m
            total.add(-torch.where(drop, finite_vals[rows, q], 0.0))
            n_inf -= (drop & infinite[rows, q]).long()
            q = _back_to_alive(alive, q, drop)
            count -= drop.long()
        while bool((count < m).any()):  # count the next alive entry
            add = count < m
            q = _forward_to_alive(alive, q, add)
            total.add(torch.where(add, finite_vals[rows, q], 0.0))
            n_inf += (add & infinite[rows, q]).long()
            count += add.long()
    return torch.tensor(chosen, dtype=torch.long, device=dev)


class _Sums:
    """``n`` running sums in double-double arithmetic: ``hi + lo`` holds each sum with about twice the
    working precision (Knuth's TwoSum makes every addition error-free into ``lo``)."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.hi = torch.zeros(n, dtype=dtype, device=device)
        self.lo = torch.zeros(n, dtype=dtype, device=device)

    def add(self, v: Tensor) -> None:
        s = self.hi + v
        b = s - self.hi
        self.lo += (self.hi - (s - b)) + (v - b)
        self.hi = s

    def value(self) -> Tensor:
        return self.hi + self.lo


def _back_to_alive(alive: Tensor, q: Tensor, move: Tensor) -> Tensor:
    """For rows in ``move``, the nearest alive position strictly before ``q`` (``-1`` if none)."""
    rows = torch.arange(q.shape[0], device=q.device)
    q = torch.where(move, q - 1, q)
    while True:
        dead = move & (q >= 0) & ~alive[rows, q.clamp(min=0)]
        if not bool(dead.any()):
            return q
        q = torch.where(dead, q - 1, q)


def _forward_to_alive(alive: Tensor, q: Tensor, move: Tensor) -> Tensor:
    """For rows in ``move``, the nearest alive position strictly after ``q``."""
    rows = torch.arange(q.shape[0], device=q.device)
    last = alive.shape[1] - 1
    q = torch.where(move, q + 1, q)
    while True:
        dead = move & (q < last) & ~alive[rows, q.clamp(max=last)]
        if not bool(dead.any()):
            return q
        q = torch.where(dead, q + 1, q)


def closest_to_median_mean(sorted_vals: Tensor, beta: int) -> Tensor:
    """Per column of ``sorted_vals: [theta, d]`` (sorted along dim 0), the mean of the ``beta`` values
    closest to the column's median.

    Those values form a contiguous window of the sorted column; among the ``theta - beta + 1`` windows
    the one with the smallest largest distance to the median is taken (the lowest window on ties).
    """
    theta = sorted_vals.shape[0]
    med = mean_of_rows(sorted_vals[(theta - 1) // 2 : theta // 2 + 1])
    windows = theta - beta + 1
    with torch.no_grad():  # the window is chosen, not differentiated
        gap = med - sorted_vals[:windows]  # below the median; then the larger of it and the gap above
        torch.maximum(gap, sorted_vals[beta - 1 :] - med, out=gap)
        start = gap.argmin(dim=0, keepdim=True)
        del gap
    idx = start + torch.arange(beta, device=sorted_vals.device).unsqueeze(1)
    return sorted_vals.gather(0, idx).mean(dim=0)


@AGGREGATORS.register("bulyan")
class Bulyan(OneThreadWhenSmall):
    """Bulyan: ``theta = n - 2f`` rows by iterated Krum, then per coordinate the mean of the
    ``beta = theta - 2f`` selected values closest to their coordinate-wise median.

    Needs ``n >= 4f + 3`` (El Mhamdi et al. 2018, Alg. 1). Inside, Krum scores sum the ``r - f - 1``
    nearest of the ``r`` remaining rows (``neighbours="byzfl"``, as ``Krum``'s default) or ``r - f - 2``
    (``neighbours="paper"``, Blanchard et al.'s Krum), at least one (see ``iterated_krum``). ByzFL has
    no Bulyan.

    Non-finite rows are infinitely far from every row, so iterated Krum never selects them while
    finite alternatives remain: with at most ``f`` bad rows the output is finite.
    """

    breakdown = "n >= 4f + 3"

    def __init__(self, f: int = 0, neighbours: Neighbours = "byzfl") -> None:
        self.f = check_int("f", f)
        self.neighbours = check_neighbours(neighbours)

    def check_n(self, n: int) -> None:
        require_n("Bulyan", n, self.f, n >= 4 * self.f + 3, "n >= 4f + 3")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        theta = n - 2 * self.f
        chosen = iterated_krum(pairwise_sq_distances(x), self.f, theta, self.neighbours)
        # the selected rows are freed once sorted (no name holds them): one [theta, d] copy at a time
        sorted_vals = order_statistics(x.index_select(0, chosen.to(x.device)), 0, theta)
        return closest_to_median_mean(sorted_vals, theta - 2 * self.f)
