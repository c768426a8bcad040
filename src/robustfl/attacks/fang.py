"""Fang et al.'s full-knowledge local model poisoning attacks (Fang, Cao, Jia & Gong, "Local Model
Poisoning Attacks to Byzantine-Robust Federated Learning", USENIX Security 2020, Sec. 3.3-3.4).

The paper crafts local *models* ``w'`` around the global model ``w_Re`` of the round, against the
direction ``s_j`` in which each parameter would change without attack. Messages here are updates
(a gradient, or ``w - w_i`` for FedAvg), so ``w_Re`` is the zero update and the benign direction is
``s = sign(mean of the honest messages)``: both attacks push every coordinate against ``s``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustfl.aggregators._distances import pairwise_sq_distances
from robustfl.aggregators.base import check_positive
from robustfl.aggregators.krum import (
    Neighbours,
    check_neighbours,
    krum_bound,
    krum_scores,
    neighbour_count,
)
from robustfl.attacks.base import ATTACKS, Attack, repeat_rows


@ATTACKS.register("fang-trimmed-mean", "fang-median", "fang-tm")
class FangTrimmedMean(Attack):
    """The attack on trimmed mean (and median, which the paper attacks the same way).

    Per coordinate ``j`` with honest extremes ``w_max,j`` and ``w_min,j``: where ``s_j > 0`` every
    Byzantine value is drawn uniformly from ``[w_min,j / b, w_min,j]`` if ``w_min,j > 0`` else from
    ``[b w_min,j, w_min,j]`` (below every honest value); where ``s_j <= 0`` from ``[w_max,j, b w_max,j]``
    if ``w_max,j > 0`` else from ``[w_max,j, w_max,j / b]`` (above every honest value). ``b = 2`` is
    the paper's. Each Byzantine row is drawn independently from ``rng``.
    """

    def __init__(self, b: float = 2.0) -> None:
        self.b = check_positive("b", b)
        if self.b <= 1:
            raise ValueError(
                f"b must be > 1 (the crafted values lie up to b times beyond the extremes), got {b}"
            )

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        x = honest.to(torch.float64)
        s = torch.sign(x.mean(dim=0))
        hi, lo = x.max(dim=0).values, x.min(dim=0).values
        b = self.b
        down_lo = torch.where(lo > 0, lo / b, lo * b)  # s > 0: [down_lo, lo]
        up_hi = torch.where(hi > 0, hi * b, hi / b)  # s <= 0: [hi, up_hi]
        start = torch.where(s > 0, down_lo, hi)
        end = torch.where(s > 0, lo, up_hi)
        u = torch.rand((f, x.shape[1]), generator=rng, dtype=torch.float64).to(x.device)
        return start + u * (end - start)


@ATTACKS.register("fang-krum")
class FangKrum(Attack):
    """The attack on Krum: all ``f`` Byzantine rows are ``-lambda s``, with ``lambda`` halved from the
    paper's upper bound until Krum (``f``, ``neighbours``) picks a Byzantine row or ``lambda < eps``.

    Upper bound (Eq. 6 with ``m = n`` rows, ``c = f``, ``D`` the Euclidean distance and ``w_Re = 0``):
    ``lambda_0 = min_i sum_{l in G_i} D(x_l, x_i) / ((n - 2f - 1) sqrt(d)) + max_i ||x_i|| / sqrt(d)``,
    ``G_i`` the ``n - f - 2`` honest rows nearest to honest row ``x_i``. ``eps = 1e-5`` is the paper's.
    The Byzantine rows are identical (the paper's simplest choice of rows close to ``w'_1``).
    """

    def __init__(self, neighbours: Neighbours = "byzfl", eps: float = 1e-5) -> None:
        self.neighbours = check_neighbours(neighbours)
        self.eps = check_positive("eps", eps)

    def lambda_bound(self, honest: Tensor, f: int) -> float:
        """The paper's upper bound ``lambda_0`` on ``lambda``."""
        h, d = honest.shape
        n = h + f
        dist = pairwise_sq_distances(honest.to(torch.float64) - honest.to(torch.float64).mean(0)).sqrt()
        k = max(min(n - f - 2, h - 1), 0)
        near = dist.sort(dim=1).values[:, 1 : k + 1].sum(dim=1)
        spread = float(near.min()) / (max(n - 2 * f - 1, 1) * math.sqrt(d))
        return spread + float(torch.linalg.vector_norm(honest.to(torch.float64), dim=1).max()) / math.sqrt(d)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        h = honest.shape[0]
        s = torch.sign(honest.to(torch.float64).mean(dim=0))
        n = h + f
        ok, bound = krum_bound(n, f, self.neighbours)
        if not ok:
            raise ValueError(f"FangKrum attacks Krum, which needs {bound}: got n = h + f = {n}, f={f}")
        k = neighbour_count(n, f, self.neighbours)
        lam = self.lambda_bound(honest, f)
        while True:
            byz = repeat_rows((-lam * s).to(honest.dtype), f)
            scores = krum_scores(pairwise_sq_distances(torch.cat([honest, byz])), k)
            if int(torch.argmin(scores)) >= h or lam < self.eps:
                return byz
            lam /= 2
