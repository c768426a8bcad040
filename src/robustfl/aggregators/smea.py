"""Smallest maximum eigenvalue averaging (SMEA; Allouah et al. 2023 / ByzFL)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._distances import pairwise_sq_distances
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators._subsets import DEFAULT_MAX_SUBSETS, check_subset_count, subset_chunks
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n


@AGGREGATORS.register("smea")
class SMEA(OneThreadWhenSmall):
    """Average the subset ``S`` of ``n - f`` rows whose empirical covariance
    ``sum_{i in S} (x_i - mu_S)(x_i - mu_S)^T`` has the smallest largest eigenvalue.

    The top eigenvalue of that ``d x d`` matrix equals the top eigenvalue of the subset's centred Gram
    matrix ``K_S = -1/2 J D_S J`` (``D_S`` the squared distances, ``J = I - 11^T/|S|``), a
    ``(n-f) x (n-f)`` matrix; we take it exactly with a batched ``eigvalsh`` over blocks of subsets
    built from one ``[n, n]`` distance matrix, so the cost per subset does not grow with ``d``. (ByzFL
    estimates it with one power-iteration step from a random start, so its choice is random; ours is
    the exact minimiser, first in lexicographic order on ties.)

    **Exponential in n**: all ``comb(n, n - f)`` subsets are scored; a call whose count exceeds
    ``max_subsets`` is refused with a ``ValueError``. A subset holding a non-finite row scores +inf and,
    with at most ``f`` such rows, is never chosen.
    """

    breakdown = "needs n > 2f; comb(n, n-f) <= max_subsets"

    def __init__(self, f: int = 0, max_subsets: int = DEFAULT_MAX_SUBSETS) -> None:
        self.f = check_int("f", f)
        self.max_subsets = check_int("max_subsets", max_subsets, minimum=1)

    def check_n(self, n: int) -> None:
        require_n("SMEA", n, self.f, n > 2 * self.f, "n > 2f")
        check_subset_count("SMEA", n, self.f, self.max_subsets)

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        k = n - self.f
        dist = pairwise_sq_distances(x)
        with single_thread(x.device):
            finite_dist = torch.where(torch.isinf(dist), 0.0, dist)
            best_val = torch.tensor(float("inf"), dtype=dist.dtype, device=dist.device)
            best = torch.arange(k, device=x.device)
            for idx in subset_chunks(n, k, max(1, (1 << 19) // (k * k)), x.device):
                rows, cols = idx.unsqueeze(2), idx.unsqueeze(1)
                sub = finite_dist[rows, cols]
                row_mean = sub.mean(dim=2, keepdim=True)
                gram = -0.5 * (sub - row_mean - row_mean.transpose(1, 2) + sub.mean(dim=(1, 2), keepdim=True))
                top = torch.linalg.eigvalsh(gram)[:, -1]
                top = torch.where(torch.isinf(dist[rows, cols]).flatten(1).any(dim=1), float("inf"), top)
                i = int(top.argmin())
                if top[i] < best_val:
                    best_val, best = top[i], idx[i]
        return x.index_select(0, best).mean(dim=0)
