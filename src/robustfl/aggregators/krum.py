"""Krum and Multi-Krum (Blanchard et al. 2017), scored from one Gram matrix."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from robustfl.aggregators._distances import pairwise_sq_distances, sorted_rows
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


def krum_scores(dist: Tensor, k: int) -> Tensor:
    """``score_i = sum of the k smallest ||x_i - x_j||^2 over j != i`` from ``D = pairwise_sq_distances``.

    Sorting row ``i`` puts its zero self-distance first, so the ``k + 1`` smallest entries are the
    self-distance plus the ``k`` nearest others. Rows at +inf distance give +inf scores.
    """
    return sorted_rows(dist)[:, : k + 1].sum(dim=1)


def lowest_scores(scores: Tensor, m: int) -> Tensor:
    """Indices of the ``m`` smallest scores, ties broken by the lowest index."""
    return torch.sort(scores, stable=True).indices[:m]


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
        n = x.shape[0]
        scores = krum_scores(pairwise_sq_distances(x), neighbour_count(n, self.f, self.neighbours))
        return x[int(torch.argmin(scores))].clone()


@AGGREGATORS.register("multi-krum", "multikrum")
class MultiKrum(OneThreadWhenSmall):
    """Multi-Krum: the mean of the ``m`` rows with the smallest Krum scores (ByzFL ``MultiKrum``).

    ``m`` defaults to ``n - f`` (ByzFL, and seed 004 §8's setting); scores and ``neighbours`` as in
    ``Krum``; ties go to the lowest index. Non-finite rows score +inf, so with at most ``f`` of them
    and ``m <= n - f`` they are never averaged.
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
        scores = krum_scores(pairwise_sq_distances(x), neighbour_count(n, self.f, self.neighbours))
        chosen = lowest_scores(scores, m).to(x.device)
        return x.index_select(0, chosen).mean(dim=0)
