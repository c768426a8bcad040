"""Divide-and-Conquer (DnC; Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model
Poisoning Attacks and Defenses for Federated Learning", NDSS 2021, Algorithm 2)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._distances import finite_rows
from robustfl.aggregators.base import AGGREGATORS, Aggregator, check_int, check_positive, require_n
from robustfl.utils import make_generator


def projection_scores(sub: Tensor) -> Tensor:
    """``<x_i - mu, v>^2`` with ``v`` the top right singular vector of the centred rows (float64 ``[n]``).

    From the ``n x n`` Gram matrix ``C C^T = W diag(lambda) W^T`` of the centred rows ``C``: with ``w``
    the top eigenvector, ``v = C^T w / sqrt(lambda)`` and ``C v = sqrt(lambda) w``, so the scores are
    ``lambda w_i^2`` -- no SVD of the ``n x b`` matrix.
    """
    c = sub.to(torch.float64, copy=True)
    c.sub_(c.mean(dim=0))
    evals, evecs = torch.linalg.eigh(c @ c.T)
    return evals[-1].clamp(min=0.0) * evecs[:, -1].square()


@AGGREGATORS.register("dnc", "divide-and-conquer")
class DnC(Aggregator):
    """Spectral filtering on random coordinate subsets, then the mean of the rows that survive.

    For each of ``num_iters`` iterations: draw ``b = min(sub_dim, d)`` coordinates at random, centre
    the sub-vectors ``x_i^r - mean_j x_j^r``, take the top right singular vector ``v`` of that centred
    ``[n, b]`` matrix and score every row by its squared projection ``s_i = <x_i^r - mu^r, v>^2``; the
    ``n - floor(filter_frac * f)`` lowest scores are kept. The output is the mean of the rows kept in
    every iteration. ``sub_dim = 10000`` and ``filter_frac = 1`` (remove ``f`` rows per
    iteration) are the values the paper and Blades use; ``num_iters = 5`` is our default (Blades uses 1;
    more iterations can only remove more rows, each with a fresh coordinate draw).

    Centring happens in float64, so the rule is translation-equivariant to round-off: on model weights
    (rows sharing a large common part) it keeps the same rows as on the updates. Non-finite rows score
    +inf and are never kept. If the iterations' kept sets have no row in common (possible only when
    ``num_iters * filter_frac * f >= n``), the rows removed the fewest times are averaged.
    The coordinate draws come from a generator seeded with ``derive_seed(seed, "dnc")``; ``reset()``
    restarts it.
    """

    breakdown = "n > 2f (an honest majority, as the paper assumes)"

    def __init__(
        self, f: int = 0, sub_dim: int = 10_000, num_iters: int = 5, filter_frac: float = 1.0, seed: int = 0
    ) -> None:
        self.f = check_int("f", f)
        self.sub_dim = check_int("sub_dim", sub_dim, minimum=1)
        self.num_iters = check_int("num_iters", num_iters, minimum=1)
        self.filter_frac = check_positive("filter_frac", filter_frac, allow_zero=True)
        self.seed = check_int("seed", seed)
        self._gen = make_generator(self.seed, "dnc")

    def check_n(self, n: int) -> None:
        require_n("DnC", n, self.f, n > 2 * self.f, "n > 2f")

    def reset(self) -> None:
        self._gen = make_generator(self.seed, "dnc")

    def removed_per_iteration(self) -> int:
        return int(self.filter_frac * self.f)

    def kept_mask(self, x: Tensor) -> Tensor:
        """Boolean ``[n]``: the rows DnC averages (draws coordinates from the rule's generator)."""
        n, d = x.shape
        ok = finite_rows(x)
        keep_count = max(n - self.removed_per_iteration(), 1)
        removed = torch.zeros(n, dtype=torch.long)
        b = min(self.sub_dim, d)
        all_ok = bool(ok.all())
        # with every coordinate in the subset the iterations would repeat one another
        for _ in range(self.num_iters if b < d else 1):
            sub = x if b == d else x.index_select(1, torch.randperm(d, generator=self._gen)[:b].to(x.device))
            scores = torch.full((n,), float("inf"), dtype=torch.float64)
            if all_ok:
                scores = projection_scores(sub).cpu()
            elif bool(ok.any()):
                scores[ok.cpu()] = projection_scores(sub[ok]).cpu()
            kept = torch.sort(scores, stable=True).indices[:keep_count]
            hit = torch.ones(n, dtype=torch.long)
            hit[kept] = 0
            removed += hit
        mask = (removed == removed.min()) & ok.cpu()
        return mask.to(x.device)

    def _aggregate(self, x: Tensor) -> Tensor:
        mask = self.kept_mask(x)
        if not bool(mask.any()):
            return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        return x[mask].mean(dim=0)
