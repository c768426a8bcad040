"""Geometric median by the smoothed Weiszfeld iteration (RFA, Pillutla et al. 2022)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._distances import centre_row, distances_to_point, median_index, row_sq_norms
from robustfl.aggregators._small import SERIAL_NUMEL, OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, check_int, check_positive
from robustfl.aggregators.coordinatewise import coordinate_median

Init = Literal["median", "zero"]
INITS: tuple[Init, ...] = ("median", "zero")


DIRECT_NUMEL = 1 << 16
"""Inputs up to this many elements (256 KiB of float32, in cache) take ``_weiszfeld_direct``: distances
from the row differences ``y_i - u``, the ``[n]`` stage in NumPy. On such inputs each torch call
(3-10 us) costs more than the arithmetic; larger inputs keep one matrix-vector product per step."""


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
    iterate come from ``distances_to_point`` (one matrix-vector product per step); on small inputs
    (``DIRECT_NUMEL``) from the differences ``y_i - u`` themselves (``_weiszfeld_direct``).
    """
    if x.numel() <= DIRECT_NUMEL and x.is_cpu and x.dtype in _DIRECT_DTYPES and not x.requires_grad:
        direct = _weiszfeld_direct(x, nu, T, tol, init)
        if direct is not None:
            return direct
        with single_thread(x.device):  # a small input that ``serial_below`` may have left on all threads
            return _weiszfeld_general(x, nu, T, tol, init)
    return _weiszfeld_general(x, nu, T, tol, init)


def _weiszfeld_general(x: Tensor, nu: float, T: int, tol: float | None, init: Init) -> tuple[Tensor, Tensor]:
    """``weiszfeld_with_weights`` on any input: distances from one matrix-vector product per step."""
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


_DIRECT_DTYPES = (torch.float32, torch.float64)


def _weiszfeld_direct(
    x: Tensor, nu: float, T: int, tol: float | None, init: Init
) -> tuple[Tensor, Tensor] | None:
    """``weiszfeld_with_weights`` for small, finite inputs with fewer, cheaper calls, or ``None`` (the
    caller then takes the general path) when a row is not finite or far enough out that its squared
    distance to the centre could overflow (the general path drops such rows).

    The same centring (``y = x - c``, iterate ``u``, result ``c + u``) and steps; the distances are
    ``||y_i - u||`` from the differences (exact, where the general path uses ``|y_i|^2 - 2 <y_i, u> +
    |u|^2``, so results agree to rounding), the first step's from norms already at hand, and the
    ``[n]`` weights, spread and centre choice are computed by NumPy."""
    limit = math.sqrt(torch.finfo(x.dtype).max) / 2  # ||y_i|| <= 2 max_j ||x_j|| keeps |y_i|^2 finite
    u: Tensor | None
    if init == "median":
        centre = coordinate_median(x)
        y = x - centre
        dist = torch.linalg.vector_norm(y, dim=1)  # ||y_i - u|| for u = 0
        u = None
        limit *= 2
    else:
        dist = torch.linalg.vector_norm(x, dim=1)  # ||y_i - u|| for u = -c: the rows' own norms
        norms = dist.numpy()
        if not norms.max() < limit:  # also false for NaN
            return None
        centre = x[median_index(norms)]  # = x[centre_row(x)]
        y = x - centre
        u = -centre
    w = dist
    for step in range(T):
        if step > 0:
            dist = torch.linalg.vector_norm(y if u is None else y - u, dim=1)
        a = dist.numpy()
        if not a.max() < limit:  # a non-finite row: left to the general path
            return None
        weights = np.maximum(a, a.dtype.type(nu))
        np.reciprocal(weights, out=weights)
        weights /= weights.sum()
        w = torch.from_numpy(weights)
        u_next = torch.mv(y.T, w)
        converged = False
        if tol is not None:
            moved = u_next if u is None else u_next - u
            converged = float(torch.linalg.vector_norm(moved)) <= tol * float(a.mean())
        u = u_next
        if converged:
            break
    return None if u is None else (centre + u, w)  # u is None only for T = 0


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
    serial_below = SERIAL_NUMEL  # its small path: elementwise ops, row norms, NumPy and one mv per step

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
