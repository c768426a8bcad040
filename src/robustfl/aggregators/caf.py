"""Covariance-bound agnostic filter (CAF; Allouah et al. 2024 / ByzFL), a weighted spectral filter."""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg
import torch
from torch import Tensor

from robustfl.aggregators._distances import pairwise_sq_distances_and_usable
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n


@AGGREGATORS.register("caf")
class CAF(OneThreadWhenSmall):
    """Iterative spectral filtering with soft weights ``c`` (ByzFL's definition), starting from ``c = 1``:

    while ``sum(c) > n - 2f``: ``mu = sum_i c_i x_i / sum(c)``; ``(lambda, v)`` = top eigenpair of the
    weighted covariance ``sum_i c_i (x_i - mu)(x_i - mu)^T / sum(c)``; ``tau_i = <x_i - mu, v>^2``;
    ``c_i <- c_i (1 - tau_i / max_{j: c_j > 0} tau_j)``. Return the ``mu`` seen with the smallest
    ``lambda``.

    All of it runs on ``n x n`` matrices: the weighted centred Gram ``K = -1/2 (I - 1w^T) D (I - w1^T)``
    (``D`` the squared distances, ``w = c / sum(c)``) has the covariance's non-zero spectrum through
    ``W^1/2 K W^1/2``, and ``<x_i - mu, v>`` is proportional to ``(K W^1/2 u)_i`` for its top
    eigenvector ``u``. So ``x`` is read twice (distances, final weighted mean) however many rounds run.

    Choices where ByzFL is loose: the eigenpair is exact (ByzFL: one power step from a random vector;
    ByzPy: three power steps), by a dense eigensolver, or by Lanczos to machine precision on large
    supports (``top_eigenpair``);
    ``tau_max`` is taken over rows still weighted (a zeroed far outlier would otherwise stall the loop),
    so each round zeroes at least one row and at most ``n`` rounds run; the loop stops early when
    ``lambda = 0`` (all weighted rows equal); with ``f = 0`` the loop never runs and the plain mean is
    returned (ByzFL returns ``None``). Unusable rows start with weight 0: NaN/Inf rows and finite rows
    whose squared distances overflow float64 (1e200, ``-finfo.max``): a row that far is bad, never near.
    The weights are computed without autograd; the output ``w @ x`` is differentiable in ``x``.
    """

    breakdown = "needs n > 2f"

    def __init__(self, f: int = 0) -> None:
        self.f = check_int("f", f)

    def check_n(self, n: int) -> None:
        require_n("CAF", n, self.f, n > 2 * self.f, "n > 2f")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        dist, ok = pairwise_sq_distances_and_usable(x.detach())
        # an unusable row (NaN/Inf, or distances that overflow float64) starts with weight 0; its
        # +inf entries are zeroed only so the arithmetic on the support stays finite
        dist = torch.where(torch.isinf(dist), 0.0, dist)
        with single_thread(torch.device("cpu")):
            weights = filter_weights(dist.cpu().numpy(), ok.cpu().numpy(), n - 2 * self.f)
        if not bool(ok.all()):
            x = torch.where(ok.unsqueeze(1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        return torch.from_numpy(weights).to(device=x.device, dtype=x.dtype) @ x


LANCZOS_MIN_M = 128
"""From this support size on, the top eigenpair comes from Lanczos iterations (ARPACK) warm-started at
the previous round's eigenvector instead of a dense ``O(m^3)`` eigensolver."""


def top_eigenpair(a: np.ndarray, start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The largest eigenvalue of the symmetric ``a`` and a unit eigenvector.

    Below ``LANCZOS_MIN_M`` rows: a dense ``torch.linalg.eigh`` (on the caller's one thread). From
    ``LANCZOS_MIN_M`` rows on: implicitly restarted Lanczos (``scipy.sparse.linalg.eigsh``, ``k = 1``)
    converged to machine precision (``tol = 0``) from ``start``, its matrix-vector products in torch;
    a round then costs ``O(m^2)`` times a few dozen instead of ``O(m^3)``. Both are exact to rounding:
    this is not the few-power-steps estimate of ByzFL or ByzPy.
    """
    m = a.shape[0]
    if m < LANCZOS_MIN_M:
        vals, vecs = torch.linalg.eigh(torch.from_numpy(a))
        return float(vals[-1]), vecs[:, -1].numpy()
    if start is None or not np.any(start):
        # a fixed pseudo-random start (not ones: the all-ones direction is near the null space of a
        # centred Gram matrix), so every run takes the same iterations
        start = np.asarray(np.random.default_rng(0).standard_normal(m))
    op = scipy.sparse.linalg.LinearOperator(a.shape, matvec=lambda v: _mv(a, v), dtype=a.dtype)
    vals, vecs = scipy.sparse.linalg.eigsh(op, k=1, which="LA", v0=start, tol=0)
    return float(vals[0]), vecs[:, 0]


def _mv(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``a @ v``; from ``LANCZOS_MIN_M`` rows on through torch, which runs on the caller's one thread.
    (NumPy's OpenBLAS threads its own matrix-vector products above about 100 rows and busy-waits:
    on a machine whose cores are shared that made CAF at n = 1024 about 10x slower.)"""
    if a.shape[0] < LANCZOS_MIN_M:
        return a @ v
    return torch.mv(torch.from_numpy(a), torch.from_numpy(np.ascontiguousarray(v).reshape(-1))).numpy()


def filter_weights(dist: np.ndarray, ok: np.ndarray, stop: int) -> np.ndarray:
    """CAF's rounds on the ``[n, n]`` squared distances; returns the weights ``w`` (summing to 1) of
    the mean with the smallest top eigenvalue. Rows with weight 0 add nothing to the mean or the
    covariance and keep weight 0, so each round works on the support only.

    The rounds are tiny dense linear algebra (at most ``n`` of them, each an ``m x m`` eigenproblem
    with ``m <= n``), run in NumPy/SciPy (a few microseconds per op, against tens for torch ops on such
    small tensors) on one thread (the caller's ``single_thread``).
    """
    c = ok.astype(np.float64)
    best_w, best_val = c / c.sum(), np.inf
    keep = np.flatnonzero(c > 0)
    sub = dist[np.ix_(keep, keep)]
    vec: np.ndarray | None = None
    while c.sum() > stop:
        w = c / c.sum()
        ws = w[keep]
        dw = _mv(sub, ws)
        gram = -0.5 * (sub - dw[None, :] - dw[:, None] + ws @ dw)
        sw = np.sqrt(ws)
        top, vec = top_eigenpair(sw[:, None] * gram * sw[None, :], vec)
        if top < best_val:
            best_val, best_w = top, w
        if top <= 0.0:
            break
        tau = np.square(_mv(gram, sw * vec))
        tau_max = tau.max()
        if not tau_max > 0:
            break
        c[keep] = np.clip(c[keep] * (1.0 - tau / tau_max), 0.0, None)
        alive = c[keep] > 0
        if not alive.all():
            keep, vec = keep[alive], vec[alive]
            sub = sub[np.ix_(alive, alive)]
    return best_w
