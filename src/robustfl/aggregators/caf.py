"""Covariance-bound agnostic filter (CAF; Allouah et al. 2024 / ByzFL), a weighted spectral filter."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._distances import centre_row, median_index, pairwise_sq_distances_and_usable
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n

if TYPE_CHECKING:
    import scipy.sparse.linalg


@AGGREGATORS.register("caf")
class CAF(OneThreadWhenSmall):
    """Iterative spectral filtering with soft weights ``c`` (ByzFL's definition), starting from ``c = 1``:

    while ``sum(c) > n - 2f``: ``mu = sum_i c_i x_i / sum(c)``; ``(lambda, v)`` = top eigenpair of the
    weighted covariance ``Sigma = sum_i c_i (x_i - mu)(x_i - mu)^T / sum(c)``; ``tau_i = <x_i - mu, v>^2``;
    ``c_i <- c_i (1 - tau_i / max_{j: c_j > 0} tau_j)``. Return the ``mu`` seen with the smallest
    ``lambda``.

    ``power_steps`` chooses the eigenpair. ``None`` (default): exact to rounding, by a dense eigensolver
    below ``LANCZOS_MIN_M`` rows, else by Lanczos to machine precision warm-started at the previous
    round's direction. ``k >= 1``: ``k`` power steps ``v <- Sigma v`` per round, the first round from a
    fixed pseudo-random combination of rows, every later round from the previous round's ``v`` (so the
    rounds together are one power iteration on the slowly changing ``Sigma``); ``lambda`` is the
    Rayleigh quotient ``v^T Sigma v / v^T v`` of the last ``v``. ByzFL estimates with one power step
    from a fresh random vector per round, ByzPy with three: ``power_steps=1`` and ``3`` are their
    estimates, warm-started. A power estimate that finds ``v`` orthogonal to every weighted row takes
    the exact eigenpair for that round.

    Two routes compute the same rounds (up to rounding). By the ``[n, n]`` squared distances ``D``
    (the exact mode always): with ``w = c / sum(c)`` and ``v = X^T a`` (``sum(a) = 0``), the
    projections are ``g = (<x_i - mu, v>)_i = -1/2 (I - 1 w^T) D a``, ``Sigma v = X^T (w * g)``,
    ``|v|^2 = a . g`` and ``v^T Sigma v = w . g^2``: one ``D`` product per power step; the exact solver
    works on ``S = W^1/2 K W^1/2``, ``K = -1/2 (I - 1w^T) D (I - w1^T)``, which has ``Sigma``'s
    non-zero spectrum, formed once per round. ``x`` is read twice (distances, final mean) however
    many rounds run, for ``n^2 d / 2`` multiply-adds. On the rows (``power_steps`` on CPU tensors, up
    to ``NUMPY_MAX_NUMEL`` elements or from ``ROWS_PER_READ * (2 power_steps + 1)`` rows on; see
    ``power_weights_on_rows``): ``2 power_steps + 1`` reads of ``x - x_c`` per round, no ``O(n^2 d)``
    term. Both centre the rows first (on a median-norm row), so rows sharing a large common part
    (model weights) lose it before any product.

    Choices where ByzFL is loose: ``tau_max`` is taken over rows still weighted (a zeroed far outlier
    would otherwise stall the loop), so each round zeroes at least one row and at most ``n`` rounds
    run; the loop stops early when ``lambda = 0`` (all weighted rows equal); with ``f = 0`` the loop
    never runs and the plain mean is returned (ByzFL returns ``None``). Unusable rows start with
    weight 0: NaN/Inf rows and finite rows whose squared distances overflow float64 (1e200,
    ``-finfo.max``): a row that far is bad, never near. The weights are computed without autograd;
    the output ``w @ x`` is differentiable in ``x``.
    """

    breakdown = "needs n > 2f"

    def __init__(self, f: int = 0, power_steps: int | None = None) -> None:
        self.f = check_int("f", f)
        if power_steps is not None and (
            isinstance(power_steps, bool) or not isinstance(power_steps, int) or power_steps < 1
        ):
            raise ValueError(
                f"power_steps must be None (exact eigenpair) or an integer >= 1, got {power_steps!r}"
            )
        self.power_steps = power_steps

    def check_n(self, n: int) -> None:
        require_n("CAF", n, self.f, n > 2 * self.f, "n > 2f")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        if self.power_steps is not None and (
            x.numel() <= NUMPY_MAX_NUMEL or n >= ROWS_PER_READ * (2 * self.power_steps + 1)
        ):
            w = power_weights_on_rows(x.detach(), n - 2 * self.f, self.power_steps)
            if w is not None:
                return torch.from_numpy(w).to(device=x.device, dtype=x.dtype) @ x
        dist, ok = pairwise_sq_distances_and_usable(x.detach())
        # an unusable row (NaN/Inf, or distances that overflow float64) starts with weight 0 and is
        # left out of the rounds (its +inf entries never enter the arithmetic)
        usable = ok.cpu().numpy()
        with single_thread(torch.device("cpu")):
            weights = filter_weights(dist.cpu().numpy(), usable, n - 2 * self.f, self.power_steps)
        if not usable.all():
            x = torch.where(ok.unsqueeze(1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        return torch.from_numpy(weights).to(device=x.device, dtype=x.dtype) @ x


LANCZOS_MIN_M = 128
"""From this support size on, the exact top eigenpair comes from Lanczos iterations (ARPACK) warm-started
at the previous round's direction instead of a dense ``O(m^3)`` eigensolver; from this size on the
``D`` products also run in torch (see ``_Products``)."""


class _Products:
    """``D @ v`` for the squared distances ``D``. From ``LANCZOS_MIN_M`` rows on through torch, which
    runs on the caller's one thread (NumPy's OpenBLAS threads its own matrix-vector products on large
    matrices and busy-waits: on a machine whose cores are shared that made CAF at n = 1024 about 10x
    slower; see ``NUMPY_MAX_NUMEL``); below, NumPy (about a microsecond per call against several for
    torch)."""

    def __init__(self, dist: np.ndarray) -> None:
        self.dist = dist
        self.torch = torch.from_numpy(dist) if dist.shape[0] >= LANCZOS_MIN_M else None

    def __call__(self, v: np.ndarray) -> np.ndarray:
        if self.torch is None:
            return self.dist @ v
        return torch.mv(self.torch, torch.from_numpy(np.ascontiguousarray(v))).numpy()


def _projections(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``g = -1/2 (I - 1 w^T) y`` for ``y = D a`` (``sum(a) = 0``): the rows' projections
    ``<x_i - mu, X^T a>``."""
    return -0.5 * (y - w @ y)


def top_eigenpair(
    op: scipy.sparse.linalg.LinearOperator, start: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """The largest eigenvalue of the symmetric operator ``op`` and a unit eigenvector, by implicitly
    restarted Lanczos (``scipy.sparse.linalg.eigsh``, ``k = 1``) converged to machine precision
    (``tol = 0``) from ``start``: exact to rounding, ``O(m^2)`` times a few dozen per call instead
    of a dense ``O(m^3)``. This is not the few-power-steps estimate of ByzFL or ByzPy."""
    import scipy.sparse.linalg  # lazy: SciPy's import costs ~25 MiB and 0.5 s

    m = op.shape[0]
    if start is None or not np.any(start):
        # a fixed pseudo-random start (not ones: the all-ones direction is near the null space of a
        # centred Gram matrix), so every run takes the same iterations
        start = np.random.default_rng(0).standard_normal(m)
    vals, vecs = scipy.sparse.linalg.eigsh(op, k=1, which="LA", v0=start, tol=0)
    return float(vals[0]), vecs[:, 0]


def _exact(dmv: _Products, w: np.ndarray, g: np.ndarray | None, buf: np.ndarray) -> tuple[float, np.ndarray]:
    """The exact top eigenvalue of ``Sigma`` and the rows' projections ``g`` on its eigenvector, from the
    top eigenpair ``(lambda, u)`` of ``S = W^1/2 K W^1/2`` (``v = X^T W^1/2 u``); ``g``, the previous
    round's projections, gives Lanczos its start ``W^1/2 g``.

    ``S_ij = -1/2 sw_i sw_j (D_ij - (Dw)_i - (Dw)_j + w.Dw)`` is formed in ``buf`` (one ``m x m``
    buffer for all rounds, about five passes over it): Lanczos then needs a few dozen plain products
    ``S u`` per round, each a single ``torch.mv`` (with ``K`` applied implicitly instead, each product
    paid a dozen extra NumPy calls: 3x slower at m = 256)."""
    sw = np.sqrt(w)
    dw = dmv(w)
    s = np.subtract(dmv.dist, dw[None, :], out=buf)
    s -= dw[:, None]
    s += w @ dw
    s *= (-0.5 * sw)[:, None]
    s *= sw[None, :]
    if w.size < LANCZOS_MIN_M:
        vals, vecs = torch.linalg.eigh(torch.from_numpy(s))
        top, u = float(vals[-1]), vecs[:, -1].numpy()
    elif not s.any():  # every weighted row equal: Sigma = 0 (ARPACK would fail on its zero Krylov vector)
        return 0.0, np.zeros_like(w)
    else:
        import scipy.sparse.linalg  # lazy, as in top_eigenpair

        st = torch.from_numpy(s)
        op = scipy.sparse.linalg.LinearOperator(
            s.shape,
            matvec=lambda u: torch.mv(st, torch.from_numpy(np.ascontiguousarray(u).reshape(-1))).numpy(),
            dtype=np.float64,
        )
        top, u = top_eigenpair(op, None if g is None else sw * g)
    a = sw * u
    return top, _projections(dmv(a - w * a.sum()), w)


def filter_weights(dist: np.ndarray, ok: np.ndarray, stop: int, power_steps: int | None = None) -> np.ndarray:
    """CAF's rounds on the ``[n, n]`` squared distances; returns the weights ``w`` (summing to 1) of
    the mean with the smallest top eigenvalue (exact, or ``power_steps`` warm-started power steps).

    Rows that reach weight 0 stay in ``D`` with weight 0 (they add nothing to the mean, the covariance
    or the products; at most ``2f`` weight is removed, so the support rarely shrinks by much);
    only unusable rows are cut out, once. The rounds are tiny dense linear algebra (a few ``D``
    products each; ``m x m`` eigenproblems in the exact mode), run in NumPy/SciPy on one thread (the
    caller's ``single_thread``).
    """
    c = ok.astype(np.float64)
    keep = np.flatnonzero(c > 0)
    if keep.size == 0:  # no usable row: no weighted mean (NaN, as 0 / 0)
        return np.full_like(c, np.nan)
    dmv = _Products(dist if keep.size == c.size else np.ascontiguousarray(dist[np.ix_(keep, keep)]))
    ck = c[keep]
    best_w, best_val = ck / ck.sum(), np.inf
    g: np.ndarray | None = None  # exact mode: the rows' projections on the last eigenvector
    a: np.ndarray | None = None  # power mode: the direction v = X^T a (sum(a) = 0) ...
    y: np.ndarray | None = None  # ... and D a
    buf: np.ndarray | None = None  # exact mode: S's buffer
    while (total := ck.sum()) > stop:
        w = ck / total
        top = np.nan
        if power_steps is not None:
            if a is None or y is None:
                a = _start(w.size).copy()
                y = dmv(a)
            for _ in range(power_steps):
                a = w * (y - w @ y)  # Sigma v = X^T (w * g), up to the factor -1/2 of g
                scale = np.abs(a).max()
                if scale > 0:
                    a /= scale
                y = dmv(a)
            h = y - w @ y  # -2 g
            tau = h * h
            norm2 = -(a @ h)  # 2 |v|^2
            if norm2 > 0:
                top = float(w @ tau) / (2.0 * norm2)  # (w . g^2) / |v|^2
        if not top > 0:  # exact mode, or a power estimate that found no direction
            if buf is None:
                buf = np.empty_like(dmv.dist)
            top, g = _exact(dmv, w, g, buf)
            tau = g * g
            a = y = None
        if top < best_val:
            best_val, best_w = top, w
        if top <= 0.0:
            break
        tau_max = tau[ck > 0].max()
        if not tau_max > 0:
            break
        ck = np.maximum(ck * (1.0 - tau / tau_max), 0.0)
    if keep.size == c.size:
        return best_w
    out = np.zeros_like(c)
    out[keep] = best_w
    return out


@functools.lru_cache(maxsize=8)
def _start(m: int) -> np.ndarray:
    """The power iteration's first direction ``X^T a``: a fixed pseudo-random ``a`` with ``sum(a) = 0``
    (not a row's direction: the start should not favour any row), the same every run; callers copy it."""
    a = np.random.default_rng(0).standard_normal(m)
    a -= a.mean()
    return a


ROWS_PER_READ = 40
"""The power-step mode works on the rows themselves (``power_weights_on_rows``) up to
``NUMPY_MAX_NUMEL`` elements and from ``ROWS_PER_READ * (2 power_steps + 1)`` rows on (120 for one
step, 280 for three). A round reads ``x`` ``2 power_steps + 1`` times (``O(n d)`` each) where the
distances cost ``n^2 d / 2`` multiply-adds once, and a handful of rounds run; small inputs save the
distance computation's fixed costs. In between (e.g. n = 64, d = 10^4: 1.9 ms by the distances
against 3.0 ms on the rows, one step, one thread) the distance route runs. Measured on one thread,
float32, n = 1024, d = 10^4: 60 ms on the rows against 187 ms by the distances."""

NUMPY_MAX_NUMEL = 1 << 18
"""Up to this many elements the rows route's ``[n, d]`` matrix-vector products run in NumPy (about
1 us per call against several for torch); above, in torch on the caller's threads. NumPy's OpenBLAS
threads ``gemv`` from about 4.6e5 elements on, and its busy-waiting threads made a ``[512, 1000]``
product take 2 ms instead of 10 us on the shared 2-core machine."""

Products = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _numpy_products(y: np.ndarray) -> Products:
    """``(a -> a^T y, v -> y v)`` in NumPy."""
    return (lambda a: a @ y), (lambda v: y @ v)


def _torch_products(y: np.ndarray) -> Products:
    """``(a -> a^T y, v -> y v)`` through torch (on the caller's intra-op threads)."""
    yt = torch.from_numpy(y)
    return (
        lambda a: torch.mv(yt.T, torch.from_numpy(a)).numpy(),
        lambda v: torch.mv(yt, torch.from_numpy(v)).numpy(),
    )


_ROWS_MODERATE = {torch.float32: 1e12, torch.float64: 1e60}
"""Largest centred row norm ``r`` for the rows route: ``v`` stays below ``n r`` and ``y v`` below
``n^2 r^2`` (1e24 n^2 in float32, whose range ends at 3e38; ``g^2`` then in float64), so nothing
overflows for any practical ``n``; beyond it, or with a NaN/Inf row, the distance route runs."""


def power_weights_on_rows(x: Tensor, stop: int, steps: int) -> np.ndarray | None:
    """``filter_weights(..., power_steps=steps)`` computed on the rows ``y = x - x_c`` (``c`` the
    median-norm row, so rows sharing a large common part lose it) instead of their distances: the same
    rounds from the same start ``v = y^T a`` with the same warm start, up to rounding. Per step
    ``g = y v - <mu, v>`` and ``Sigma v = y^T (w * g)`` (``sum(w * g) = 0``; two ``[n, d]``
    matrix-vector products, in torch), per round ``mu = w^T y`` (one); the ``[n]`` and ``[d]`` vectors
    live in NumPy (about 1 us per op against several for torch: the whole call at n = 16 is a tenth of
    a millisecond). CPU tensors only. Returns ``None`` (the caller takes the distance route) when a
    row is NaN/Inf or too large for the working dtype, or when the estimate finds no direction."""
    limit = _ROWS_MODERATE.get(x.dtype)
    if x.device.type != "cpu" or limit is None:
        return None
    n = x.shape[0]
    if x.numel() <= NUMPY_MAX_NUMEL:  # centre_row and the check in NumPy: a few us instead of ~20
        xs = x.numpy()
        with np.errstate(over="ignore", invalid="ignore"):
            sq = np.einsum("ij,ij->i", xs, xs)  # NaN sorts last, as in centre_row
            y = xs - xs[median_index(sq)]
            if not (np.einsum("ij,ij->i", y, y) < limit * limit).all():
                return None
        times, times_v = _numpy_products(y)
    else:
        yt = x - x[centre_row(x)]
        if not bool((torch.linalg.vector_norm(yt, dim=1) < limit).all()):
            return None
        y = yt.numpy()
        times, times_v = _torch_products(y)

    ck = np.ones(n)
    best_w, best_val = ck / n, np.inf
    v = times(_start(n).astype(y.dtype))
    yv = times_v(v)
    while (total := ck.sum()) > stop:
        w = ck / total
        wy = w.astype(y.dtype)
        mu = times(wy)
        for _ in range(steps):
            wg = wy * (yv - mu @ v)
            scale = np.abs(wg).max()  # keeps v at the scale of the rows (no overflow over the steps)
            if scale > 0:
                wg /= scale
            v = times(wg)  # y^T (w * g) = Sigma v (times 1/scale): mu^T sum(w * g) = 0
            yv = times_v(v)
        g = (yv - mu @ v).astype(np.float64)
        tau = g * g
        norm2 = float(v @ v)  # below (n r)^2: no overflow
        top = float(w @ tau) / norm2 if norm2 > 0 else np.nan
        if not top > 0:
            return None
        if top < best_val:
            best_val, best_w = top, w
        tau_max = tau[ck > 0].max()
        ck = np.maximum(ck * (1.0 - tau / tau_max), 0.0)
    return best_w
