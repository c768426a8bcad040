"""Distances between message rows (one Gram matrix) and from rows to one point.

Byzantine rows may hold NaN, Inf or 1e38. A row is *usable* when its squared distance to the centre
is finite in float64; every other row is "infinitely far" from everything, so rules that select near
neighbours never pick it and sorts/argmins never see NaN.

Model weights (FedAvg, FedMA, Flower) are rows ``W + e_i`` that share a large common part ``W``: the
textbook identity ``|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>`` then subtracts numbers of size ``|W|^2`` to get
one of size ``|e_i - e_j|^2`` and returns rounding error. Distances are translation invariant, so for
such rows we apply the identity to ``x_i - c`` for a centre ``c`` near the rows (``centre_row``);
rows without a large common part (gradients) skip the centring, which only costs a pass and would
double their scale. Either way any pair whose result is still small against its terms is
recomputed around a nearer centre (``_refine``), so the choice affects speed, never accuracy.

Only the Gram matrix itself (``n^2 d`` multiply-adds) runs in torch, on the input's device; the
``[n]`` and ``[n, n]`` stages run in NumPy, whose per-call cost (about 1 us) is several times lower
than a torch op's, which matters at n = 16 where the whole call takes a fraction of a millisecond.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

# The working dtype stays float32 only while every |x_i - c|^2 is below this: then the identity
# cannot overflow, and the result is as accurate as torch.cdist's own matmul path.
_F32_MODERATE = 1e30

# A squared distance this small relative to the two squared norms it is computed from has
# lost digits to cancellation (float32: a relative error of about sqrt(d) * 6e-8 / 1e-2). In
# ``pairwise_sq_distances`` such pairs are recomputed around a nearer centre, in
# ``distances_to_point`` from the row difference.
_CANCELLATION = {torch.float16: 1e-1, torch.bfloat16: 1e-1, torch.float32: 1e-2, torch.float64: 1e-8}

# Rows are centred on ``c`` only when that shrinks most squared norms below this fraction of the
# uncentred ones (rows sharing a large common part); gradients, whose squared norms centring on a
# row roughly doubles, are used as they are.
_CENTRE_GAIN = 0.5

# The Gram matrix is accumulated over column blocks of about this many elements (4 MiB of float32):
# a centred block is a temporary that stays in cache (memory O(n d) with no second [n, d] copy).
# An uncentred block is a view of the input, blocked only so that the row strips below re-read it
# from cache: blocks four times wider mean fewer BLAS calls (each a fork/join on several threads).
_BLOCK_NUMEL = 1 << 20
_VIEW_BLOCKS = 4

# Whether to centre is decided from the uncentred Gram matrix of the first columns, about this many
# elements (1 MiB of float32): enough columns to tell, and little work thrown away when the rows turn
# out to need centring (for the rest it is the first block of their Gram matrix).
_HEAD_NUMEL = 1 << 18

# From this many rows on, only the upper block triangle of the symmetric Gram matrix is multiplied,
# in row strips of ``max(_STRIP_ROWS, m // 8)`` rows (56% of the multiply-adds at n = 1024);
# below it one product is faster than several smaller ones.
_STRIP_MIN = 128
_STRIP_ROWS = 64


def finite_rows(x: Tensor) -> Tensor:
    """Boolean mask ``[n]``: rows whose every entry is finite."""
    return torch.isfinite(x).all(dim=1)


def row_sq_norms(x: Tensor) -> Tensor:
    """``|x_i|^2`` for every row, in ``x.dtype`` (NaN/Inf rows, and rows that overflow, are non-finite).

    ``vector_norm(x, dim=1)`` squared: one streaming pass with no ``[n, d]`` temporary (on CPU about
    10x faster than ``einsum("ij,ij->i")``, which goes through ``bmm``).
    """
    return torch.linalg.vector_norm(x, dim=1).square()


def median_index(norms: NDArray[np.floating]) -> int:
    """Index of the lower median of ``norms``, NaN counted as +inf, ties to the lower index."""
    key = np.where(np.isnan(norms), np.inf, norms)
    return int(np.argsort(key, kind="stable")[(norms.shape[0] - 1) // 2])


def centre_row(x: Tensor) -> int:
    """Index of the row with the (lower) median Euclidean norm among rows without NaN.

    A cheap robust centre for the Gram identity: with fewer than half the rows Byzantine, a row whose
    norm is the median is honest or at least no farther from the origin than an honest row, so
    centring on it never makes the identity worse than not centring; rows that overflow (norm +inf)
    sort last and are never picked while finite rows remain. Gradients have no common part and gain
    nothing, model weights lose ``W`` entirely.
    """
    norms = torch.linalg.vector_norm(x.detach(), dim=1, dtype=torch.float32 if x.itemsize < 4 else None)
    return median_index(norms.cpu().numpy())


def _shared_part_is_large(head: Tensor) -> bool:
    """Whether the rows share a large common part, judged from the uncentred Gram matrix ``head`` of
    (a first block of) their columns: centring on the median-norm row ``c`` would bring
    ``|x_i - x_c|^2 = |x_i|^2 - 2 <x_i, x_c> + |x_c|^2`` below ``_CENTRE_GAIN`` times ``|x_i|^2`` for
    more than half the rows (a row with non-finite terms counts as no). The identity's own rounding
    error is far below that margin. Model weights: yes; gradients: no (centring on a row roughly
    doubles their norms)."""
    g = head.cpu().numpy()
    s = g.diagonal().astype(np.float64)
    c = int(np.argsort(s)[(s.shape[0] - 1) // 2])  # NumPy sorts NaN last
    with np.errstate(over="ignore", invalid="ignore"):
        shrunk = s - 2.0 * g[:, c].astype(np.float64) + s[c] < _CENTRE_GAIN * s
    return 2 * int(np.count_nonzero(shrunk)) > s.shape[0]


def _robust_centre(x: Tensor) -> Tensor | None:
    """``x[centre_row(x)]``, or the first finite row when over half the rows hold NaN/Inf (None: none)."""
    c = centre_row(x)
    if not bool(torch.isfinite(x[c]).all()):
        ok = finite_rows(x).cpu().numpy()
        if not ok.any():
            return None
        c = int(np.flatnonzero(ok)[0])
    return x[c]


def _block_width(m: int) -> int:
    """Columns per block of the Gram accumulation for ``m`` rows."""
    return max(1, _BLOCK_NUMEL // max(m, 1))


def _block(x: Tensor, cols: slice, rows: Tensor | None, centre: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``x[rows, cols] - centre[cols]`` in ``dtype``; a view of ``x`` when there is nothing to do."""
    y = x if cols == slice(0, x.shape[1]) else x[:, cols]
    if rows is not None:
        y = y.index_select(0, rows)
    if y.dtype != dtype:
        y = y.to(dtype)
    return y if centre is None else y - centre[cols].to(dtype)


def _gram(
    x: Tensor,
    centre: Tensor | None,
    rows: Tensor | None,
    dtype: torch.dtype,
    start: int = 0,
    stop: int | None = None,
    gram: Tensor | None = None,
) -> Tensor:
    """``G = (x[rows] - centre)(x[rows] - centre)^T`` in ``dtype`` (``centre=None``: ``x[rows] x[rows]^T``)
    over the columns ``start:stop``, added to ``gram`` when given; accumulated over column blocks.
    From ``_STRIP_MIN`` rows on only the upper block triangle is multiplied and the rest mirrored
    (``G`` is then exactly symmetric)."""
    m = x.shape[0] if rows is None else rows.numel()
    stop = x.shape[1] if stop is None else stop
    view = centre is None and rows is None and dtype == x.dtype
    width = _block_width(m) * (_VIEW_BLOCKS if view else 1)
    if gram is None and m < _STRIP_MIN and stop - start <= width:  # one product: fewest torch calls
        y = _block(x, slice(start, stop), rows, centre, dtype)
        return torch.mm(y, y.T)
    step = m if m < _STRIP_MIN else max(_STRIP_ROWS, m // 8)
    if gram is None:
        gram = torch.zeros(m, m, dtype=dtype, device=x.device)
    for a in range(start, stop, width):
        y = _block(x, slice(a, min(a + width, stop)), rows, centre, dtype)
        for i in range(0, m, step):
            gram[i : i + step, i:].addmm_(y[i : i + step], y[i:].T)
    for i in range(step, m, step):
        gram[i : i + step, :i] = gram[:i, i : i + step].T
    return gram


def _gram_to_distances(gram: Tensor) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """``(D, sq)`` from a Gram matrix: ``D = sq_i + sq_j - 2 G_ij`` clamped at 0 with a zero diagonal,
    ``sq = diag(G)`` (so exact ties stay exact: equal distances between small-integer rows compare
    equal)."""
    g = gram.cpu().numpy()
    sq = g.diagonal().copy()
    with np.errstate(over="ignore", invalid="ignore"):
        dist = np.add.outer(sq, sq) - 2.0 * g
    np.maximum(dist, 0.0, out=dist)
    np.fill_diagonal(dist, 0.0)
    return dist, sq


def _distances_around(
    x: Tensor, centre: Tensor | None, rows: Tensor | None, gram: Tensor | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], torch.dtype]:
    """``(D, sq, dtype)`` as float64 for ``x[rows]`` around ``centre`` (None: the origin), and the dtype
    the work ran in: float32 while that is safe (float32 or half input, every ``|y_i|^2`` of a row
    without NaN/Inf below 1e30), float64 otherwise. ``gram``: the Gram matrix in the input's working
    dtype, when already computed. A row with a NaN/Inf entry only spoils its own row and column of
    the Gram matrix: its ``sq`` is not finite."""
    if x.dtype != torch.float64:
        dist, sq = _gram_to_distances(_gram(x, centre, rows, torch.float32) if gram is None else gram)
        moderate = sq < _F32_MODERATE
        if moderate.all() or not bool(finite_rows(x.index_select(0, _rows_of(x, rows, ~moderate))).any()):
            return dist.astype(np.float64), sq.astype(np.float64), torch.float32  # nothing overflowed
        gram = None
    dist, sq = _gram_to_distances(_gram(x, centre, rows, torch.float64) if gram is None else gram)
    return dist.astype(np.float64, copy=False), sq.astype(np.float64, copy=False), torch.float64


def _rows_of(x: Tensor, rows: Tensor | None, mask: NDArray[np.bool_]) -> Tensor:
    """Indices into ``x`` of the rows ``mask`` marks within ``x[rows]``."""
    idx = torch.from_numpy(np.flatnonzero(mask)).to(x.device)
    return idx if rows is None else rows.index_select(0, idx)


def _refine(
    x: Tensor, dist: NDArray[np.float64], sq: NDArray[np.float64], usable: NDArray[np.bool_], tol: float
) -> None:
    """Recompute, in place, every pair whose distance is below ``tol`` times its scale
    ``|y_i|^2 + |y_j|^2`` (``sq``: the ``|y_i|^2`` around the centre it was computed with).

    Nothing to do when the smallest distance is at least ``tol`` times twice the largest ``|y_i|^2``
    (gradients: two reductions, no ``[n, n]`` temporaries). Else each round takes the row with the
    most suspect pairs as the new centre and recomputes the Gram matrix of it and its suspect
    partners only; the pairs with that row are then exact to rounding (their scale equals their
    distance), so at most ``n`` rounds run, each over a subset of rows.
    """
    np.fill_diagonal(dist, np.inf)
    nearest = dist.min()
    np.fill_diagonal(dist, 0.0)
    if nearest >= tol * 2.0 * sq.max():  # False when either is NaN
        return
    scale = sq[:, None] + sq[None, :]
    off = usable[:, None] & usable[None, :]
    np.fill_diagonal(off, False)
    for _ in range(x.shape[0]):
        suspect = (dist < tol * scale) & off
        if not suspect.any():
            return
        pivot = int(suspect.sum(axis=1).argmax())
        rows = np.concatenate(([pivot], np.flatnonzero(suspect[pivot])))
        sub, sq, _ = _distances_around(x, x[pivot], torch.from_numpy(rows).to(x.device))
        grid = np.ix_(rows, rows)
        dist[grid] = sub
        scale[grid] = sq[:, None] + sq[None, :]


def sq_distance_matrix(x: Tensor) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``pairwise_sq_distances_and_usable`` as NumPy arrays on the host (the form the selection
    stages of Krum and NNM work on).

    The uncentred Gram matrix of the first columns decides whether to centre
    (``_shared_part_is_large``); for gradients it is kept and completed, so the common case costs one
    ``n x n x d`` product and no extra pass over ``x``."""
    x = x.detach()
    d = x.shape[1]
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    head_stop = min(d, max(1, _HEAD_NUMEL // x.shape[0]))
    head = _gram(x, None, None, work, stop=head_stop)
    centre = _robust_centre(x) if _shared_part_is_large(head) else None
    if centre is not None:
        gram = _gram(x, centre, None, work)
    else:
        gram = head if head_stop == d else _gram(x, None, None, work, start=head_stop, gram=head)
    dist, sq, work = _distances_around(x, centre, None, gram)
    usable = np.isfinite(sq)
    _refine(x, dist, sq, usable, _CANCELLATION[work])
    if not usable.all():
        dist[~usable, :] = np.inf
        dist[:, ~usable] = np.inf
        np.fill_diagonal(dist, 0.0)
    if work == torch.float64:
        dist[np.isnan(dist)] = np.inf
    return dist, usable


def pairwise_sq_distances_and_usable(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(D, usable)``: ``D[i, j] = ||x_i - x_j||^2`` as float64 ``[n, n]`` and the mask of usable rows.

    ``D`` has a zero diagonal and ``+inf`` in every row and column of an unusable row: one with a
    NaN/Inf entry, or whose squared distance to the centre overflows float64 (1e200, ``-finfo.max``):
    such a row is far, never near.

    Computed as ``|y_i|^2 + |y_j|^2 - 2 <y_i, y_j>`` with ``y = x - x_c`` (``c = centre_row(x)``) when
    the rows share a large common part, else ``y = x``: one ``n x n x d`` matmul instead of ``n^2``
    row differences, formed in column blocks. float32 work (fast BLAS; absolute error
    ~1e-7 sqrt(d) (|y_i|^2 + |y_j|^2), like ``torch.cdist``) while every squared norm is below 1e30,
    else float64. Pairs that still cancel (``D_ij`` below 1e-2 of ``|y_i|^2 + |y_j|^2`` in float32;
    1e-8 in float64) are recomputed around one of their rows. Computed without autograd.
    """
    dist, usable = sq_distance_matrix(x)
    return torch.from_numpy(dist).to(x.device), torch.from_numpy(usable).to(x.device)


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


def nearest_mask_np(dist: NDArray[np.float64], k: int) -> NDArray[np.bool_]:
    """Boolean ``[n, n]``: row ``i`` marks its ``k`` smallest entries of ``dist`` (no NaN), ties going to
    the lower column index: the first ``k`` of a stable argsort of the row, without the argsort.

    Per row, with ``t`` its ``k``-th smallest value (``np.partition``, linear time): every entry up to
    ``t`` when there are exactly ``k`` of them (no tie straddles the ``k``-th place: almost every
    row), else every entry below ``t`` and the first ``k - #{< t}`` entries equal to ``t``.
    """
    t = np.partition(dist, k - 1, axis=1)[:, k - 1 : k]
    mask = dist <= t
    tied_rows = np.flatnonzero(mask.sum(axis=1) != k)
    if tied_rows.size:
        sub, ts = dist[tied_rows], t[tied_rows]
        below, tied = sub < ts, sub == ts
        room = k - below.sum(axis=1, keepdims=True)
        mask[tied_rows] = below | (tied & (np.cumsum(tied, axis=1) <= room))
    return mask
