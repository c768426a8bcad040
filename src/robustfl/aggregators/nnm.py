"""Nearest-neighbour mixing (NNM), a pre-aggregator (Allouah et al., AISTATS 2023, "Fixing by mixing")."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._distances import nearest_mask_np, sq_distance_matrix
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, PreAggregator, check_int, require_n


@AGGREGATORS.register("nnm")
class NNM(OneThreadWhenSmall, PreAggregator):
    """``NNM_f(x)_i = (1/(n-f)) sum_{j in N_i} x_j`` with ``N_i`` the ``n - f`` rows nearest to ``x_i``
    (Euclidean, ``x_i`` itself included). Output ``Tensor[n, d]``; ByzFL's definition and parameter name.

    The mixing is one ``[n, n] @ [n, d]`` product with a 0 / ``1/(n-f)`` matrix. Ties in distance go to
    the lower row index (``nearest_mask_np``). Non-finite rows (NaN/Inf) are infinitely far from every row, so
    with at most ``f`` of them no finite row's neighbourhood contains one; a non-finite row's own
    distances are undefined, and its output is the mean of the first ``n - f`` usable rows (a finite row
    whose distances overflow float64, e.g. 1e200, counts as non-finite).
    """

    breakdown = "needs n > f (pair it with a robust aggregator for f < n/2)"

    def __init__(self, f: int = 0) -> None:
        self.f = check_int("f", f)

    def check_n(self, n: int) -> None:
        require_n("NNM", n, self.f, n > self.f, "n > f")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        k = n - self.f
        dist, ok = sq_distance_matrix(x)
        if not ok.all():
            dist[~ok] = np.where(ok, 0.0, np.inf)
            keep = torch.from_numpy(ok).to(x.device).unsqueeze(1)
            x = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
        mix = torch.from_numpy(nearest_mask_np(dist, k)).to(device=x.device, dtype=x.dtype).mul_(1.0 / k)
        return mix @ x
