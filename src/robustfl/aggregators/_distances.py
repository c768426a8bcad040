"""Pairwise distances between message rows, computed once with one Gram matrix.

Byzantine rows may hold NaN, Inf or 1e38. Distances are therefore computed in float64 (1e38**2 fits)
and any non-finite result is mapped to +inf, so a bad row is simply "infinitely far" from everything:
rules that select near neighbours never pick it, and sorts/argmins never see NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor


def finite_rows(x: Tensor) -> Tensor:
    """Boolean mask ``[n]``: rows whose every entry is finite."""
    return torch.isfinite(x).all(dim=1)


def pairwise_sq_distances(x: Tensor) -> Tensor:
    """``D[i, j] = ||x_i - x_j||^2`` as float64 ``[n, n]``, zero diagonal, +inf where undefined.

    Uses ``|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>`` (one ``n x n x d`` matmul instead of ``n^2`` row
    differences), clamped at 0 against round-off. In float64 the identity's cancellation error
    (~1e-16 of ``|x|^2``) is negligible next to gradient-scale distances.
    """
    x64 = x.to(torch.float64)
    ok = finite_rows(x64)
    x64 = torch.where(ok.unsqueeze(1), x64, torch.zeros((), dtype=x64.dtype, device=x64.device))
    sq = (x64 * x64).sum(dim=1)
    dist = sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (x64 @ x64.T)
    dist.clamp_(min=0.0)
    dist = torch.where(torch.isfinite(dist), dist, torch.full_like(dist, float("inf")))
    bad = ~ok
    dist[bad, :] = float("inf")
    dist[:, bad] = float("inf")
    dist.fill_diagonal_(0.0)
    return dist
