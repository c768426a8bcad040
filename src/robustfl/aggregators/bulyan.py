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

    ``dist``'s rows are sorted once; a step then removes the chosen row and, from every other row, its
    one entry for the chosen column, so the rows stay sorted and each score is the sum of a prefix,
    the very numbers a fresh sort of the submatrix gives (bit for bit). Only the prefix that later
    steps can sum is kept (``n - f`` entries for ``neighbours="byzfl"``). That is ``O(r^2)`` moves per
    step instead of a sort of the submatrix.
    """
    n = dist.shape[0]
    need = [max(neighbour_count(r, f, neighbours), min(1, r - 1)) + 1 for r in range(n, n - theta, -1)]
    # only a prefix of each sorted row is ever summed; every step shortens it by one entry
    width = min(n, max(w + s for s, w in enumerate(need)))
    order = dist.sort(dim=1, stable=True)
    vals = order.values[:, :width].contiguous()
    cols = order.indices[:, :width].to(torch.int32).contiguous()
    remaining = torch.arange(n, device=dist.device)
    chosen = []
    for step in range(theta):
        r = remaining.numel()
        pick = int(torch.argmin(vals[:, : need[step]].sum(dim=1)))
        column = remaining[pick]
        chosen.append(column)
        if step == theta - 1:
            break
        rows = torch.cat(
            [torch.arange(pick, device=dist.device), torch.arange(pick + 1, r, device=dist.device)]
        )
        vals, cols, remaining = (
            vals.index_select(0, rows),
            cols.index_select(0, rows),
            remaining.index_select(0, rows),
        )
        # drop the chosen column's entry where a row's prefix holds it, else the prefix's last entry
        hit = cols == column.to(torch.int32)
        at = torch.where(hit.any(dim=1), hit.to(torch.uint8).argmax(dim=1), width - 1).unsqueeze(1)
        shift = torch.arange(width - 1, device=dist.device).unsqueeze(0)
        shift = shift + (shift >= at).to(shift.dtype)
        vals, cols = vals.gather(1, shift), cols.gather(1, shift)
        width -= 1
    return torch.stack(chosen)


def closest_to_median_mean(sorted_vals: Tensor, beta: int) -> Tensor:
    """Per column of ``sorted_vals: [theta, d]`` (sorted along dim 0), the mean of the ``beta`` values
    closest to the column's median.

    Those values form a contiguous window of the sorted column; among the ``theta - beta + 1`` windows
    the one with the smallest largest distance to the median is taken (the lowest window on ties).
    """
    theta = sorted_vals.shape[0]
    med = mean_of_rows(sorted_vals[(theta - 1) // 2 : theta // 2 + 1])
    windows = theta - beta + 1
    below = med - sorted_vals[:windows]
    above = sorted_vals[beta - 1 :] - med
    start = torch.maximum(below, above).argmin(dim=0, keepdim=True)
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
        selected = x.index_select(0, chosen.to(x.device))
        return closest_to_median_mean(order_statistics(selected, 0, theta), theta - 2 * self.f)
