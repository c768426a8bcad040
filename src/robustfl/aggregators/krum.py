"""Krum and Multi-Krum (Blanchard et al. 2017), scored from one Gram matrix."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from robustfl.aggregators._distances import sq_distance_matrix
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n

Neighbours = Literal["byzfl", "paper"]


def check_neighbours(value: object) -> Neighbours:
    if value not in ("byzfl", "paper"):
        raise ValueError(f"neighbours must be 'byzfl' (n-f-1 nearest) or 'paper' (n-f-2), got {value!r}")
    return value


def neighbour_count(n: int, f: int, neighbours: Neighbours) -> int:
    """How many nearest *other* rows a Krum score sums: ``n-f-1`` (ByzFL) or ``n-f-2`` (paper), >= 0."""
    return max(n - f - (1 if neighbours == "byzfl" else 2), 0)


def krum_bound(n: int, f: int, neighbours: Neighbours) -> tuple[bool, str]:
    """ByzFL serves ``n > 2f``; the paper's analysis needs ``n > 2f + 2``."""
    if neighbours == "byzfl":
        return n > 2 * f, "n > 2f"
    return n > 2 * f + 2, "n > 2f + 2"


def krum_scores_np(dist: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """``score_i = sum of the k smallest ||x_i - x_j||^2 over j != i`` from ``D = sq_distance_matrix``.

    Sorting row ``i`` puts its zero self-distance first, so the ``k + 1`` smallest entries are the
    self-distance plus the ``k`` nearest others, summed in ascending order (rows holding the same
    distances get bit-identical scores, so exact ties stay ties). Rows at +inf distance score +inf.
    NumPy's vectorised sort of float64 rows is several times faster than torch's (``docs/RESULTS.md``).
    """
    return np.sort(dist, axis=1)[:, : k + 1].sum(axis=1)


def krum_scores(dist: Tensor, k: int) -> Tensor:
    """``krum_scores_np`` of a ``pairwise_sq_distances`` tensor, on its device."""
    return torch.from_numpy(krum_scores_np(dist.detach().cpu().numpy(), k)).to(dist.device)


def lowest_scores_np(scores: NDArray[np.float64], m: int) -> NDArray[np.intp]:
    """Indices of the ``m`` smallest scores, ties broken by the lowest index."""
    return np.argsort(scores, kind="stable")[:m]


def lowest_scores(scores: Tensor, m: int) -> Tensor:
    """``lowest_scores_np`` of a score tensor, on its device."""
    return torch.from_numpy(lowest_scores_np(scores.detach().cpu().numpy(), m)).to(scores.device)


# Rows per matrix-vector product in ``weighted_row_sum``.
_SUM_BLOCK = 32

# Multi-Krum averages the chosen rows with ``weighted_row_sum`` from this many chosen elements on;
# below, copying them out and taking ``mean`` costs fewer torch calls.
_COPY_NUMEL = 1 << 16


def weighted_row_sum(x: Tensor, w: NDArray[np.floating]) -> Tensor:
    """``sum_i w_i x_i`` (``w`` in ``x``'s dtype, zero weights skipped) as one matrix-vector product per
    block of ``_SUM_BLOCK`` rows, the partial sums added in turn: the round-off then grows with the
    block size and the number of blocks, not with ``n`` (float32 model weights near 1e3, n = 1024:
    6e-3 from one product over all rows, 2e-4 in blocks, like ``torch.mean``'s 1.5e-4)."""
    out = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    for a in range(0, x.shape[0], _SUM_BLOCK):
        wb = w[a : a + _SUM_BLOCK]
        if wb.any():  # not out.addmv_: BLAS would accumulate into ``out`` row by row, like one product
            out += torch.mv(x[a : a + _SUM_BLOCK].T, torch.from_numpy(wb).to(x.device))
    return out


@AGGREGATORS.register("krum")
class Krum(OneThreadWhenSmall):
    """Krum: the row with the smallest sum of squared distances to its nearest neighbours.

    ``out = x_i*``, ``i* = argmin_i sum_{j in N_i} ||x_i - x_j||^2`` where ``N_i`` are the nearest
    ``n - f - 1`` other rows (``neighbours="byzfl"``, ByzFL's definition, served for ``n > 2f``) or
    ``n - f - 2`` (``neighbours="paper"``, Blanchard et al. 2017, which needs ``n > 2f + 2``). Ties go to
    the lowest index.

    Non-finite rows are infinitely far from every row: their scores are +inf and, with at most ``f``
    of them, they are never chosen.
    """

    breakdown = "n > 2f (neighbours='paper': n > 2f + 2)"

    def __init__(self, f: int = 0, neighbours: Neighbours = "byzfl") -> None:
        self.f = check_int("f", f)
        self.neighbours = check_neighbours(neighbours)

    def check_n(self, n: int) -> None:
        ok, bound = krum_bound(n, self.f, self.neighbours)
        require_n("Krum", n, self.f, ok, bound)

    def _aggregate(self, x: Tensor) -> Tensor:
        dist, _ = sq_distance_matrix(x)
        scores = krum_scores_np(dist, neighbour_count(x.shape[0], self.f, self.neighbours))
        return x[int(np.argmin(scores))].clone()


@AGGREGATORS.register("multi-krum", "multikrum")
class MultiKrum(OneThreadWhenSmall):
    """Multi-Krum: the mean of the ``m`` rows with the smallest Krum scores (ByzFL ``MultiKrum``).

    ``m`` defaults to ``n - f`` (ByzFL, and seed 004 §8's setting); scores and ``neighbours`` as in
    ``Krum``; ties go to the lowest index. Non-finite rows score +inf, so with at most ``f`` of them
    and ``m <= n - f`` they are never averaged. When every row is finite and the chosen rows hold at
    least 2^16 elements, the mean is ``x^T w`` with ``w_i = 1/m`` on the chosen rows
    (``weighted_row_sum``), which copies no rows.
    """

    breakdown = "n > 2f (neighbours='paper': n > 2f + 2)"

    def __init__(self, f: int = 0, m: int | None = None, neighbours: Neighbours = "byzfl") -> None:
        self.f = check_int("f", f)
        self.m = None if m is None else check_int("m", m, minimum=1)
        self.neighbours = check_neighbours(neighbours)

    def check_n(self, n: int) -> None:
        ok, bound = krum_bound(n, self.f, self.neighbours)
        require_n("MultiKrum", n, self.f, ok, bound)
        if self.m is not None and self.m > n:
            raise ValueError(f"MultiKrum averages m={self.m} rows but got only n={n}; choose m <= n")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        m = n - self.f if self.m is None else self.m
        dist, usable = sq_distance_matrix(x)
        chosen = lowest_scores_np(krum_scores_np(dist, neighbour_count(n, self.f, self.neighbours)), m)
        if m * x.shape[1] >= _COPY_NUMEL and usable.all():  # all finite: sum_i w_i x_i copies no rows
            w: NDArray[np.floating] = np.zeros(
                n, dtype=np.float64 if x.dtype == torch.float64 else np.float32
            )
            w[chosen] = 1.0 / m
            return weighted_row_sum(x, w)
        return x.index_select(0, torch.from_numpy(chosen).to(x.device)).mean(dim=0)
