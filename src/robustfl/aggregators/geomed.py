"""Geometric median by the smoothed Weiszfeld iteration (RFA, Pillutla et al. 2022)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from robustfl.aggregators._distances import centre_row, distances_to_point, row_sq_norms
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, check_int, check_positive
from robustfl.aggregators.coordinatewise import coordinate_median

Init = Literal["median", "zero"]
INITS: tuple[Init, ...] = ("median", "zero")


def check_init(init: object) -> Init:
    if init not in INITS:
        raise ValueError(f"init must be 'median' (coordinate-wise median) or 'zero' (ByzFL), got {init!r}")
    return init


def smoothed_weiszfeld(x: Tensor, nu: float, T: int, tol: float | None = None, init: Init = "zero") -> Tensor:
    """Approximate ``argmin_z sum_i ||z - x_i||`` by ``T`` smoothed Weiszfeld steps.

    ``beta_i = max(||z_t - x_i||, nu)``, ``z_{t+1} = sum_i x_i / beta_i / sum_i 1 / beta_i`` from
    ``z_0 = 0`` (``init="zero"``) or the coordinate-wise median (``init="median"``). With ``tol`` set,
    stops early once ``||z_{t+1} - z_t|| <= tol * mean_i ||z_t - x_i||`` (the step is small against the
    rows' spread around the iterate; unlike ``||z||`` this scale does not change when every row is
    shifted by the same large vector, as model weights are).

    Rows whose squared distance to the centre is not finite (NaN, Inf, or overflowing values such as
    1e20 in float32) are left out; if no row is left, the result is the starting point.
    """
    return weiszfeld_with_weights(x, nu, T, tol, init)[0]


def weiszfeld_with_weights(
    x: Tensor, nu: float, T: int, tol: float | None = None, init: Init = "zero"
) -> tuple[Tensor, Tensor]:
    """``smoothed_weiszfeld`` plus the normalised Weiszfeld weights ``w [n]`` of its last step.

    ``w_i = (1 / beta_i) / sum_j (1 / beta_j)``, so the returned median is ``sum_i w_i x_i``; rows left
    out get weight 0. Far-away (Byzantine) rows get small weights, which is what BGMD's robust memory
    uses.

    Numerics: the iteration runs on ``y_i = x_i - c`` (``c`` the median, or for ``init="zero"`` the row
    ``centre_row(x)``) and returns ``c + u``. Translation changes nothing in exact arithmetic, but rows
    that share a large common part (model weights ``W + e_i``) would otherwise have their distances,
    and the iterate itself, computed at the scale of ``|W|`` instead of ``|e_i|``. Distances to the
    iterate come from ``distances_to_point`` (one matrix-vector product per step).
    """
    if init == "median":
        centre = coordinate_median(x)
        if not bool(torch.isfinite(centre).all()):  # a coordinate with more than half its values NaN/Inf
            centre = torch.nan_to_num(centre, nan=0.0, posinf=0.0, neginf=0.0)
    else:
        centre = x[centre_row(x)]
        if not bool(torch.isfinite(centre).all()):
            centre = torch.zeros_like(centre)
    y = x - centre
    sq = row_sq_norms(y)
    usable = torch.isfinite(sq)
    all_usable = bool(usable.all())
    if not all_usable:
        y, sq = y[usable], sq[usable]
    u = torch.zeros_like(centre) if init == "median" else -centre
    w = torch.zeros(y.shape[0], dtype=x.dtype, device=x.device)
    if y.shape[0] > 0:
        for _ in range(T):
            dist = distances_to_point(y, sq, u)
            spread = float(dist.detach().mean()) if tol is not None else 0.0
            w = dist.clamp(min=nu).reciprocal()  # out of place: inputs may require grad
            w = w / w.sum()
            u_next = torch.mv(y.T, w)
            converged = (
                tol is not None
                and float(torch.linalg.vector_norm(u_next.detach() - u.detach())) <= tol * spread
            )
            u = u_next
            if converged:
                break
    z = centre + u
    if all_usable:
        return z, w
    full = torch.zeros(usable.shape[0], dtype=w.dtype, device=w.device)
    full[usable] = w
    return z, full


@AGGREGATORS.register("geometric-median", "geomed", "gm", "rfa")
class GeometricMedian(OneThreadWhenSmall):
    """Geometric median ``argmin_z sum_i ||z - x_i||_2`` (seed 000 "GM"; seed 004 ch. 8 "RFA").

    Approximated by at most ``T`` smoothed Weiszfeld steps (Pillutla, Kakade & Harchaoui 2022) with
    smoothing ``nu``: ``z_{t+1} = sum_i x_i / beta_i / sum_i 1 / beta_i``, ``beta_i = max(||z_t - x_i||,
    nu)``, stopping early when the step is below ``tol`` times the mean distance of the rows to the
    iterate (``tol=None``: always ``T`` steps).

    Two settings, on purpose:

    * the defaults (``init="median", nu=1e-6, T=100, tol=1e-6``) converge: the iteration starts from
      the coordinate-wise median, a robust point, so a crashed worker's zero row or a far outlier does
      not pull the first steps, and it runs until the step is negligible;
    * ``GeometricMedian.byzfl()`` = ``(init="zero", nu=0.1, T=3, tol=None)`` is ByzFL's
      ``GeometricMedian`` (same start, smoothing and weights) for side-by-side comparisons. Three steps
      from 0 are not a geometric median: nine rows at 20 and one zero row give about 2.07 in every
      coordinate.

    Seed 004 §8 runs RFA with ``nu = 1e-5`` and ``T = 500``. Non-finite rows (and rows whose squared
    distance to the centre overflows) are dropped before iterating; with fewer than half the rows bad,
    the output is finite and close to the honest rows' geometric median.
    """

    breakdown = "fewer than n/2 Byzantine rows (breakdown 1/2)"

    def __init__(
        self, nu: float = 1e-6, T: int = 100, tol: float | None = 1e-6, init: Init = "median"
    ) -> None:
        self.nu = check_positive("nu", nu)
        self.T = check_int("T", T, minimum=1)
        self.tol = None if tol is None else check_positive("tol", tol)
        self.init = check_init(init)

    @classmethod
    def byzfl(cls) -> GeometricMedian:
        """ByzFL's settings: three smoothed Weiszfeld steps from 0 with ``nu = 0.1``."""
        return cls(nu=0.1, T=3, tol=None, init="zero")

    def _aggregate(self, x: Tensor) -> Tensor:
        return smoothed_weiszfeld(x, self.nu, self.T, self.tol, self.init)
