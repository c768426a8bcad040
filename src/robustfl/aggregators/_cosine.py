"""Cosine geometry of message rows, accurate when the rows share a large common part.

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


def cosine_distances(x: Tensor) -> Tensor:
    """``D[i, j] = 1 - cos(x_i, x_j)`` as float64 ``[n, n]`` with a zero diagonal (finite rows only)."""
    x64 = x.to(torch.float64)
    norms = torch.linalg.vector_norm(x64, dim=1)
    zero = norms == 0
    u = x64 / torch.where(zero, torch.ones_like(norms), norms).unsqueeze(1)
    live = ~zero
    if bool(live.any()):
        u = u - torch.where(live.unsqueeze(1), u, torch.zeros_like(u)).sum(0) / int(live.sum())
    u = torch.where(live.unsqueeze(1), u, torch.zeros_like(u))
    gram = u @ u.T
    sq = gram.diagonal()
    dist = ((sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * gram) / 2.0).clamp_(0.0, 2.0)
    dist[zero, :] = 1.0
    dist[:, zero] = 1.0
    dist.fill_diagonal_(0.0)
    return dist


def cosine_to(x: Tensor, g: Tensor) -> Tensor:
    """``cos(x_i, g)`` for every row, float64 ``[n]``; 0 where either vector is zero.

    ``1 - ||u_i - v||^2 / 2`` with the difference of the unit vectors taken coordinate by coordinate,
    so nearly parallel rows (model weights) keep their tiny angles.
    """
    x64, g64 = x.to(torch.float64), g.to(torch.float64)
    norms = torch.linalg.vector_norm(x64, dim=1)
    gn = torch.linalg.vector_norm(g64)
    if float(gn) == 0:
        return torch.zeros_like(norms)
    safe = torch.where(norms == 0, torch.ones_like(norms), norms)
    diff = torch.linalg.vector_norm(x64 / safe.unsqueeze(1) - g64 / gn, dim=1)
    cos = (1.0 - diff.square() / 2.0).clamp_(-1.0, 1.0)
    return torch.where(norms == 0, torch.zeros_like(cos), cos)
