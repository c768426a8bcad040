"""Minimum-diameter averaging (MDA; El Mhamdi, Guerraoui & Rouault, ICML 2018 / ByzFL)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._distances import pairwise_sq_distances
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators._subsets import DEFAULT_MAX_SUBSETS, check_subset_count, subset_chunks
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n


@AGGREGATORS.register("mda")
class MDA(OneThreadWhenSmall):
    """Average the subset ``S`` of ``n - f`` rows with the smallest diameter
    ``max_{i, j in S} ||x_i - x_j||`` (ByzFL's definition).

    The diameter is set by one pair, so exact ties are common (every subset holding the widest pair
    of a tight cluster scores the same). ByzFL keeps the first tied subset it meets, which depends on
    row order; we break ties by the smaller sum of squared pairwise distances within ``S`` (the
    tighter subset), so the rule stays permutation invariant. Any tied subset has the same guarantee.

    **Exponential in n**: all ``comb(n, n - f)`` subsets are scored. They are scored in vectorised
    blocks (one gather of the ``[n, n]`` distance matrix and one max per block), but the count itself
    explodes, so a call whose count exceeds ``max_subsets`` is refused with a ``ValueError``. Non-finite
    rows are infinitely far from everything, so any subset holding one has infinite diameter and, with
    at most ``f`` such rows, is never chosen.
    """

    breakdown = "needs n > 2f; comb(n, n-f) <= max_subsets"

    def __init__(self, f: int = 0, max_subsets: int = DEFAULT_MAX_SUBSETS) -> None:
        self.f = check_int("f", f)
        self.max_subsets = check_int("max_subsets", max_subsets, minimum=1)

    def check_n(self, n: int) -> None:
        require_n("MDA", n, self.f, n > 2 * self.f, "n > 2f")
        check_subset_count("MDA", n, self.f, self.max_subsets)

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        k = n - self.f
        dist = pairwise_sq_distances(x)
        with single_thread(x.device):
            best_key = (float("inf"), float("inf"))
            best = torch.arange(k, device=x.device)
            for idx in subset_chunks(n, k, max(1, (1 << 21) // (k * k)), x.device):
                sub = dist[idx.unsqueeze(2), idx.unsqueeze(1)].flatten(1)
                diam = sub.amax(dim=1)
                spread = torch.where(diam == diam.min(), sub.sum(dim=1), float("inf"))
                i = int(spread.argmin())
                key = (float(diam[i]), float(spread[i]))
                if key < best_key:
                    best_key, best = key, idx[i]
        return x.index_select(0, best).mean(dim=0)
