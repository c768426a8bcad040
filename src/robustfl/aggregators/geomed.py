"""Geometric median by the smoothed Weiszfeld iteration (RFA, Pillutla et al. 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._distances import distances_to_point, row_sq_norms
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, check_int, check_positive


def smoothed_weiszfeld(x: Tensor, nu: float, T: int, tol: float | None = None) -> Tensor:
    """Approximate ``argmin_z sum_i ||z - x_i||`` by ``T`` smoothed Weiszfeld steps from ``z_0 = 0``.

    ``beta_i = max(||z_t - x_i||, nu)``, ``z_{t+1} = sum_i x_i / beta_i / sum_i 1 / beta_i``.
    With ``tol`` set, stops early once ``||z_{t+1} - z_t|| <= tol * ||z_{t+1}||``.

    Rows whose squared norm is not finite (NaN, Inf, or overflowing values such as 1e20 in float32)
    are left out; if no row is left, the result is the starting point ``0``. Distances come from
    ``distances_to_point`` (one matrix-vector product per step, no ``[n, d]`` temporary).
    """
    sq = row_sq_norms(x)
    usable = torch.isfinite(sq)
    if not bool(usable.all()):
        x, sq = x[usable], sq[usable]
    z = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    if x.shape[0] == 0:
        return z
    for _ in range(T):
        beta = distances_to_point(x, sq, z).clamp(min=nu)
        w = beta.reciprocal()
        z_next = torch.mv(x.T, w) / w.sum()
        if tol is not None and float(torch.linalg.vector_norm(z_next - z)) <= tol * float(
            torch.linalg.vector_norm(z_next)
        ):
            return z_next
        z = z_next
    return z


@AGGREGATORS.register("geometric-median", "geomed", "gm", "rfa")
class GeometricMedian(OneThreadWhenSmall):
    """Geometric median ``argmin_z sum_i ||z - x_i||_2`` (seed 000 "GM"; seed 004 ch. 8 "RFA").

    Approximated by ``T`` smoothed Weiszfeld steps from ``z_0 = 0`` with smoothing ``nu`` (ByzFL's
    ``GeometricMedian(nu=0.1, T=3)``, whose initialisation and weights this matches exactly). Seed 004
    §8 runs RFA with ``nu = 1e-5`` and ``T = 500``; use ``tol`` (relative change of the iterate, e.g.
    ``1e-6``) to stop such long runs as soon as they converge.

    Non-finite rows (and rows whose squared norm overflows) are dropped before iterating; with fewer
    than half the rows bad, the output is finite and close to the honest rows' geometric median.
    """

    breakdown = "fewer than n/2 Byzantine rows (breakdown 1/2)"

    def __init__(self, nu: float = 0.1, T: int = 3, tol: float | None = None) -> None:
        self.nu = check_positive("nu", nu)
        self.T = check_int("T", T, minimum=1)
        self.tol = None if tol is None else check_positive("tol", tol)

    def _aggregate(self, x: Tensor) -> Tensor:
        return smoothed_weiszfeld(x, self.nu, self.T, self.tol)
