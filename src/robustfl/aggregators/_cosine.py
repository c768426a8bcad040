"""Cosine geometry and norms of message rows, accurate when the rows share a large common part.

``1 - cos(x_i, x_j) = ||u_i - u_j||^2 / 2`` with ``u_i = x_i / ||x_i||``. For model weights the unit
vectors differ by ~1e-6 of their length, so ``1 - <u_i, u_j>`` formed in float32 (or from an
uncentred Gram matrix) is pure round-off. Here the unit vectors are formed in float64 and *centred*
(``u_i - mean_k u_k``, which leaves their differences unchanged) before one Gram matrix, so the
distances keep their relative accuracy at any common part. Rows of norm zero have no direction: their
cosine with every other row is 0 (distance 1), as in scikit-learn's ``cosine_similarity``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def row_norms(x: Tensor) -> Tensor:
    """``||x_i||`` as float64 ``[n]``, computed in ``x``'s dtype (one streaming pass; on CPU asking
    ``vector_norm`` for float64 is ~20x slower). Rows with a NaN/Inf entry, or whose norm overflows
    the dtype, get a non-finite norm: every rule here treats them as unusable."""
    return torch.linalg.vector_norm(x, dim=1).to(torch.float64)


def cosine_distances(x: Tensor, chunk_elements: int = 1 << 21) -> Tensor:
    """``D[i, j] = 1 - cos(x_i, x_j)`` as float64 ``[n, n]`` with a zero diagonal (finite rows only).

    The float64 centred unit vectors are formed ``chunk_elements`` at a time (blocks of columns), and
    their Gram matrix summed over the blocks, so memory stays O(n^2 + chunk) for any ``d``.
    """
    n, d = x.shape
    norms = row_norms(x)
    zero = norms == 0
    live = ~zero
    count = int(live.sum())
    inv = torch.where(zero, 0.0, 1.0 / torch.where(zero, 1.0, norms)).unsqueeze(1)
    gram = torch.zeros((n, n), dtype=torch.float64, device=x.device)
    step = max(1, chunk_elements // max(n, 1))
    for start in range(0, d, step):
        u = x[:, start : start + step].to(torch.float64) * inv  # zero rows stay zero
        if count == n:
            u -= u.mean(dim=0)
        elif count:
            u[live] -= u.sum(dim=0) / count
        gram.addmm_(u, u.T)
    sq = gram.diagonal()
    dist = ((sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * gram) / 2.0).clamp_(0.0, 2.0)
    dist = (dist + dist.T) / 2.0  # exactly symmetric whatever the BLAS does with u @ u.T
    dist[zero, :] = 1.0
    dist[:, zero] = 1.0
    dist.fill_diagonal_(0.0)
    return dist


def weighted_rows(weights: Tensor, x: Tensor) -> Tensor:
    """``sum_i weights_i x_i`` as one matrix-vector product in ``x``'s dtype (``[d]``)."""
    return weights.to(device=x.device, dtype=x.dtype) @ x
