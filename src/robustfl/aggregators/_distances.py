"""Distances between message rows (one centred Gram matrix) and from rows to one point.

Byzantine rows may hold NaN, Inf or 1e38. A row is *usable* when its squared distance to the centre
is finite in float64; every other row is "infinitely far" from everything, so rules that select near
neighbours never pick it and sorts/argmins never see NaN.

Model weights (FedAvg, FedMA, Flower) are rows ``W + e_i`` that share a large common part ``W``: the
textbook identity ``|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>`` then subtracts numbers of size ``|W|^2`` to get
one of size ``|e_i - e_j|^2`` and returns rounding error. Distances are translation invariant, so we
apply the identity to ``x_i - c`` for a centre ``c`` near the rows (``centre_row``), and recentre any
pair whose result is still small against its terms (``_refine``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# The working dtype stays float32 only while every centred |x_i - c|^2 is below this: then the identity
# cannot overflow, and the result is as accurate as torch.cdist's own matmul path.
_F32_MODERATE = 1e30

# A squared distance this small relative to the two centred squared norms it is computed from has
# lost digits to cancellation (float32: a relative error of about sqrt(d) * 6e-8 / 1e-2). In
# ``pairwise_sq_distances`` such pairs are recomputed around a nearer centre, in
# ``distances_to_point`` from the row difference.
_CANCELLATION = {torch.float16: 1e-1, torch.bfloat16: 1e-1, torch.float32: 1e-2, torch.float64: 1e-8}

# Centred rows are formed in column blocks of about this many elements (4 MiB of float32), so the
# temporary stays in cache and memory stays O(n d) with no second [n, d] copy.
_BLOCK_NUMEL = 1 << 20


def finite_rows(x: Tensor) -> Tensor:
    """Boolean mask ``[n]``: rows whose every entry is finite."""
    return torch.isfinite(x).all(dim=1)


def row_sq_norms(x: Tensor) -> Tensor:
    """``|x_i|^2`` for every row, in ``x.dtype`` (NaN/Inf rows, and rows that overflow, are non-finite).

    ``vector_norm(x, dim=1)`` squared: one streaming pass with no ``[n, d]`` temporary (on CPU about
    10x faster than ``einsum("ij,ij->i")``, which goes through ``bmm``).
    """
    return torch.linalg.vector_norm(x, dim=1).square()


def centre_row(x: Tensor) -> int:
    """Index of the row with the (lower) median Euclidean norm among rows without NaN.

    A cheap robust centre for the Gram identity: with fewer than half the rows Byzantine, a row whose
    norm is the median is honest or at least no farther from the origin than an honest row, so
    centring on it never makes the identity worse than not centring; rows that overflow (norm +inf)
    sort last and are never picked while finite rows remain. Gradients have no common part and gain
    nothing, model weights lose ``W`` entirely.
    """
    norms = torch.linalg.vector_norm(x, dim=1, dtype=torch.float32 if x.itemsize < 4 else None)
    norms = torch.nan_to_num(norms, nan=float("inf"), posinf=float("inf"))
    order = torch.sort(norms, stable=True).indices
    return int(order[(x.shape[0] - 1) // 2])


def _centred_gram(x: Tensor, centre: Tensor, rows: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``G = (x[rows] - centre)(x[rows] - centre)^T`` in ``dtype``, accumulated over column blocks."""
    m = x.shape[0] if rows is None else rows.numel()
    d = x.shape[1]
    width = max(1, _BLOCK_NUMEL // max(m, 1))
    gram = torch.zeros(m, m, dtype=dtype, device=x.device)
    for a in range(0, d, width):
        block = x[:, a : a + width]
        if rows is not None:
            block = block.index_select(0, rows)
        y = block.to(dtype) - centre[a : a + width].to(dtype)
        gram.addmm_(y, y.T)
    return gram


def _gram_to_distances(gram: Tensor) -> tuple[Tensor, Tensor]:
    """``(D, sq)`` from a Gram matrix: ``D = sq_i + sq_j - 2 G_ij`` clamped at 0 with a zero diagonal,
    ``sq = diag(G)`` (so exact ties stay exact: equal distances between small-integer rows compare
    equal)."""
    sq = gram.diagonal().clone()
    dist = sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * gram
    dist.clamp_(min=0.0)
    dist.fill_diagonal_(0.0)
    return dist, sq


def _distances_around(x: Tensor, centre: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor, torch.dtype]:
    """``(D, sq, dtype)`` as float64 for ``x[rows]`` around ``centre``, and the dtype the work ran in:
    float32 while that is safe (float32 or half input, every centred ``|y_i|^2`` of a row without
    NaN/Inf below 1e30), float64 otherwise. A row with a NaN/Inf entry only spoils its own row and
    column of the Gram matrix: its ``sq`` is not finite."""
    if x.dtype != torch.float64:
        dist, sq = _gram_to_distances(_centred_gram(x, centre, rows, torch.float32))
        big = ~(sq < _F32_MODERATE)
        if not bool(big.any()):
            return dist.to(torch.float64), sq.to(torch.float64), torch.float32
        idx = big.nonzero().squeeze(1)
        sel = x.index_select(0, idx if rows is None else rows.index_select(0, idx))
        if not bool(finite_rows(sel).any()):  # only NaN/Inf rows: nothing overflowed
            return dist.to(torch.float64), sq.to(torch.float64), torch.float32
    dist, sq = _gram_to_distances(_centred_gram(x, centre, rows, torch.float64))
    return dist, sq, torch.float64


def _refine(x: Tensor, dist: Tensor, scale: Tensor, usable: Tensor, tol: float) -> None:
    """Recompute, in place, every pair whose distance is below ``tol`` times its ``scale``
    (``|y_i|^2 + |y_j|^2`` around the centre it was computed with).

    Each round takes the row with the most such pairs as the new centre and recomputes the Gram
    matrix of it and its suspect partners only; the pairs with that row are then exact to rounding
    (their scale equals their distance), so at most ``n`` rounds run, each over a subset of rows.
    """
    off = usable.unsqueeze(1) & usable.unsqueeze(0)
    off.fill_diagonal_(False)
    for _ in range(x.shape[0]):
        suspect = (dist < tol * scale) & off
        if not bool(suspect.any()):
            return
        pivot = int(suspect.sum(dim=1).argmax())
        rows = torch.cat([torch.tensor([pivot], device=x.device), suspect[pivot].nonzero().squeeze(1)])
        sub, sq, _ = _distances_around(x, x[pivot], rows)
        grid = (rows.unsqueeze(1), rows.unsqueeze(0))
        dist[grid] = sub
        scale[grid] = sq.unsqueeze(1) + sq.unsqueeze(0)


def pairwise_sq_distances_and_usable(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(D, usable)``: ``D[i, j] = ||x_i - x_j||^2`` as float64 ``[n, n]`` and the mask of usable rows.

    ``D`` has a zero diagonal and ``+inf`` in every row and column of an unusable row: one with a
    NaN/Inf entry, or whose squared distance to the centre overflows float64 (1e200, ``-finfo.max``):
    such a row is far, never near.

    Computed as ``|y_i|^2 + |y_j|^2 - 2 <y_i, y_j>`` for ``y = x - x_c`` (``c = centre_row(x)``): one
    ``n x n x d`` matmul instead of ``n^2`` row differences, formed in column blocks. float32 work
    (fast BLAS; absolute error ~1e-7 sqrt(d) (|y_i|^2 + |y_j|^2), like ``torch.cdist``) while every
    centred squared norm is below 1e30, else float64. Pairs that still cancel (``D_ij`` below 1e-2 of
    ``|y_i|^2 + |y_j|^2`` in float32; 1e-8 in float64) are recomputed around one of their rows.
    Computed without autograd.
    """
    x = x.detach()
    n = x.shape[0]
    centre = x[centre_row(x)]
    if not bool(torch.isfinite(centre).all()):  # more than half the rows are NaN/Inf
        ok = finite_rows(x)
        if not bool(ok.any()):
            dist = torch.full((n, n), float("inf"), dtype=torch.float64, device=x.device)
            return dist.fill_diagonal_(0.0), ok
        centre = x[int(ok.nonzero()[0])]
    dist, sq, work = _distances_around(x, centre, None)
    usable = torch.isfinite(sq)
    scale = sq.unsqueeze(1) + sq.unsqueeze(0)
    _refine(x, dist, scale, usable, _CANCELLATION[work])
    if not bool(usable.all()):
        bad = ~usable
        dist[bad, :] = float("inf")
        dist[:, bad] = float("inf")
        dist.fill_diagonal_(0.0)
    dist = torch.where(torch.isnan(dist), float("inf"), dist) if work == torch.float64 else dist
    return dist, usable


def pairwise_sq_distances(x: Tensor) -> Tensor:
    """``D[i, j] = ||x_i - x_j||^2`` as float64 ``[n, n]``: ``pairwise_sq_distances_and_usable(x)[0]``."""
    return pairwise_sq_distances_and_usable(x)[0]


def distances_to_point(x: Tensor, sq: Tensor, z: Tensor) -> Tensor:
    """``||x_i - z||`` for every row of ``x`` (all rows usable), with ``sq = row_sq_norms(x)``.

    ``|x_i|^2 - 2 <x_i, z> + |z|^2`` costs one matrix-vector product and no ``[n, d]`` temporary.
    Rows where that identity cancels badly (the squared distance is below 1e-2 of
    ``|x_i|^2 + |z|^2`` in float32, 1e-8 in float64) are recomputed exactly from ``x_i - z``; a
    non-finite result becomes +inf. Callers keep ``x`` centred near ``z`` (``weiszfeld_with_weights``),
    so the recomputation is the exception.
    """
    zz = torch.dot(z, z)
    scale = sq + zz
    d2 = torch.addmv(scale, x, z, alpha=-2.0)
    suspect = d2 <= _CANCELLATION.get(x.dtype, 1e-2) * scale
    if bool(suspect.any()):
        idx = suspect.nonzero().squeeze(1)
        d2[idx] = row_sq_norms(x.index_select(0, idx) - z)
    inf = float("inf")
    return torch.nan_to_num(d2.clamp_(min=0.0), nan=inf, posinf=inf).sqrt_()


def sorted_rows(dist: Tensor) -> Tensor:
    """``dist.sort(dim=1).values`` for a distance matrix (no autograd): on CPU by NumPy, whose
    AVX-512/AVX2 sort of float64 rows is several times faster than torch's (n = 1024: 5.3 ms against
    48 ms of CPU time on one thread; ``docs/RESULTS.md``). Sorted values are the same whichever sort produced them."""
    if dist.device.type == "cpu" and not dist.requires_grad:
        return torch.from_numpy(np.sort(dist.numpy(), axis=1))
    return dist.sort(dim=1).values


def nearest_mask(dist: Tensor, k: int) -> Tensor:
    """Boolean ``[n, n]``: row ``i`` marks its ``k`` smallest entries of ``dist`` (no NaN), ties going to
    the lower column index: the first ``k`` of a stable argsort of the row, without the argsort.

    Per row, with ``t`` its ``k``-th smallest value (``sorted_rows``): every entry below ``t``, then
    the first ``k - #{< t}`` entries equal to ``t`` in column order.
    """
    t = sorted_rows(dist)[:, k - 1 : k]
    below = dist < t
    tied = dist == t
    room = k - below.sum(dim=1, keepdim=True)
    return below | (tied & (tied.cumsum(dim=1) <= room))
