"""Covariance-bound agnostic filter (CAF; Allouah et al. 2024 / ByzFL), a weighted spectral filter."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._distances import finite_rows, pairwise_sq_distances
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, Aggregator, check_int, require_n


@AGGREGATORS.register("caf")
class CAF(Aggregator):
    """Iterative spectral filtering with soft weights ``c`` (ByzFL's definition), starting from ``c = 1``:

    while ``sum(c) > n - 2f``: ``mu = sum_i c_i x_i / sum(c)``; ``(lambda, v)`` = top eigenpair of the
    weighted covariance ``sum_i c_i (x_i - mu)(x_i - mu)^T / sum(c)``; ``tau_i = <x_i - mu, v>^2``;
    ``c_i <- c_i (1 - tau_i / max_{j: c_j > 0} tau_j)``. Return the ``mu`` seen with the smallest
    ``lambda``.

    All of it runs on ``n x n`` matrices: the weighted centred Gram ``K = -1/2 (I - 1w^T) D (I - w1^T)``
    (``D`` the squared distances, ``w = c / sum(c)``) has the covariance's non-zero spectrum through
    ``W^1/2 K W^1/2``, and ``<x_i - mu, v>`` is proportional to ``(K W^1/2 u)_i`` for its top
    eigenvector ``u``. So ``x`` is read twice (distances, final weighted mean) however many rounds run.

    Choices where ByzFL is loose: the eigenpair is exact (ByzFL: one power step from a random vector);
    ``tau_max`` is taken over rows still weighted (a zeroed far outlier would otherwise stall the loop),
    so each round zeroes at least one row and at most ``n`` rounds run; the loop stops early when
    ``lambda = 0`` (all weighted rows equal); with ``f = 0`` the loop never runs and the plain mean is
    returned (ByzFL returns ``None``). Non-finite rows start with weight 0.
    """

    breakdown = "needs n > 2f"

    def __init__(self, f: int = 0) -> None:
        self.f = check_int("f", f)

    def check_n(self, n: int) -> None:
        require_n("CAF", n, self.f, n > 2 * self.f, "n > 2f")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        dist = pairwise_sq_distances(x)
        infinite = torch.isinf(dist)
        ok = finite_rows(x) if bool(infinite.any()) else torch.ones(n, dtype=torch.bool, device=x.device)
        dist = torch.where(infinite, 0.0, dist)
        with single_thread(x.device):
            c = ok.to(dist.dtype)
            best_w = c / c.sum()
            best_val = float("inf")
            while float(c.sum()) > n - 2 * self.f:
                w = c / c.sum()
                dw = dist @ w
                gram = -0.5 * (dist - dw.unsqueeze(0) - dw.unsqueeze(1) + w @ dw)
                sw = w.sqrt()
                vals, vecs = torch.linalg.eigh(sw.unsqueeze(1) * gram * sw.unsqueeze(0))
                top = float(vals[-1])
                if top < best_val:
                    best_val, best_w = top, w
                if top <= 0.0:
                    break
                tau = (gram @ (sw * vecs[:, -1])).square()
                tau_max = tau[c > 0].max()
                if not tau_max > 0:
                    break
                c = (c * (1.0 - tau / tau_max)).clamp_(min=0.0)
        if not bool(ok.all()):
            x = torch.where(ok.unsqueeze(1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        return best_w.to(x.dtype) @ x
