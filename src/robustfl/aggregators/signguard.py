"""SignGuard (Xu, Huang, Wang & Luo, "SignGuard: Byzantine-robust Federated Learning through
Collaborative Malicious Gradient Filtering", ICDCS 2022, Algorithm 1 "SignGuard")."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._cosine import row_norms, weighted_rows
from robustfl.aggregators.base import AGGREGATORS, Aggregator, check_int, check_positive
from robustfl.utils import make_generator


def estimate_bandwidth(points: np.ndarray, quantile: float = 0.5) -> float:
    """Mean over points of the distance to their ``k``-th nearest point (itself included as the
    first), ``k = max(1, floor(quantile * n))``: scikit-learn's ``estimate_bandwidth`` rule. With
    ``quantile = 0.5`` (scikit-learn's default is 0.3) the bandwidth is the spread of a majority
    group, so an honest majority forms one cluster instead of splitting into near neighbours."""
    n = points.shape[0]
    k = max(1, int(quantile * n))
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    return float(np.sort(dist, axis=1)[:, min(k, n) - 1].mean())


def mean_shift(points: np.ndarray, bandwidth: float | None = None, max_iter: int = 300) -> np.ndarray:
    """Flat-kernel mean shift (Comaniciu & Meer, 2002) seeded at every point; cluster labels ``[n]``.

    Each seed moves to the mean of the points within ``bandwidth`` until it moves less than
    ``1e-3 * bandwidth``; modes closer than ``bandwidth`` to a mode with more points in its window are
    dropped; every point joins its nearest mode (ties: the mode with more points). ``bandwidth=None``
    estimates it with :func:`estimate_bandwidth`. Identical points form one cluster at bandwidth 0.
    """
    n = points.shape[0]
    bw = estimate_bandwidth(points) if bandwidth is None else bandwidth
    if bw <= 0:
        return np.unique(points, axis=0, return_inverse=True)[1].reshape(n)

    def window(m: np.ndarray) -> np.ndarray:  # [seeds, n]: which points lie within bw of each seed
        return np.linalg.norm(m[:, None, :] - points[None, :, :], axis=2) <= bw

    modes = points.copy()
    moving = np.ones(n, dtype=bool)
    for _ in range(max_iter):  # every seed at once; a seed stops once it moves < 1e-3 * bw
        inside = window(modes[moving])
        new = inside @ points / inside.sum(axis=1, keepdims=True)
        step = np.linalg.norm(new - modes[moving], axis=1)
        modes[moving] = new
        moving[np.flatnonzero(moving)[step < 1e-3 * bw]] = False
        if not moving.any():
            break
    counts = window(modes).sum(axis=1)
    centres: list[np.ndarray] = []
    for i in sorted(range(n), key=lambda i: (-counts[i], i)):
        if all(np.linalg.norm(modes[i] - c) >= bw for c in centres):
            centres.append(modes[i])
    c = np.stack(centres)
    return np.argmin(np.linalg.norm(points[:, None, :] - c[None, :, :], axis=2), axis=1)


@AGGREGATORS.register("signguard")
class SignGuard(Aggregator):
    """Norm filter, sign clustering, then the mean of the survivors clipped to the median norm.

    1. Norm-threshold filtering: with ``M = median_i ||x_i||``, ``S1 = {i : lower <= ||x_i|| / M <= upper}``
       (the paper's ``L = 0.1``, ``R = 3.0``).
    2. Sign-based clustering: on a random ``coord_frac`` of the coordinates (the paper: 10%), each row's
       sign statistics ``(fraction > 0, fraction = 0, fraction < 0)``, clustered by mean shift (the
       paper's choice); ``S2`` = the largest cluster (ties: the one holding the lowest row index).
    3. ``out = (1 / |S|) sum_{i in S} x_i min(1, M / ||x_i||)`` over ``S = S1 ∩ S2`` (``S1`` if the
       intersection is empty).

    Non-finite rows fail the norm filter. The coordinate draws come from a generator seeded with
    ``derive_seed(seed, "signguard")``; ``reset()`` restarts it. ``bandwidth=None`` estimates the
    mean-shift bandwidth from the data (:func:`estimate_bandwidth`).
    """

    breakdown = "fewer than n/2 Byzantine rows (the honest rows must form the largest sign cluster)"

    def __init__(
        self,
        lower: float = 0.1,
        upper: float = 3.0,
        coord_frac: float = 0.1,
        bandwidth: float | None = None,
        seed: int = 0,
    ) -> None:
        self.lower = check_positive("lower", lower, allow_zero=True)
        self.upper = check_positive("upper", upper)
        if self.lower >= self.upper:
            raise ValueError(f"lower must be < upper, got lower={lower}, upper={upper}")
        self.coord_frac = check_positive("coord_frac", coord_frac)
        if self.coord_frac > 1:
            raise ValueError(f"coord_frac must lie in (0, 1], got {coord_frac}")
        self.bandwidth = None if bandwidth is None else check_positive("bandwidth", bandwidth)
        self.seed = check_int("seed", seed)
        self._gen = make_generator(self.seed, "signguard")

    def reset(self) -> None:
        self._gen = make_generator(self.seed, "signguard")

    def selected(self, x: Tensor) -> tuple[Tensor, float]:
        """``(mask [n], M)``: the rows SignGuard averages and the median norm it clips them to."""
        n, d = x.shape
        norms = row_norms(x)
        ok = torch.isfinite(norms)
        if not bool(ok.any()):
            return ok, 0.0
        median = float(norms[ok].quantile(0.5))
        ratio = norms / median if median > 0 else torch.where(norms == 0, 1.0, torch.inf)
        s1 = ok & (ratio >= self.lower) & (ratio <= self.upper)
        k = max(1, round(self.coord_frac * d))
        cols = torch.randperm(d, generator=self._gen)[:k].to(x.device)
        sub = x.index_select(1, cols)[ok]
        feats = torch.stack(
            [(sub > 0).double().mean(1), (sub == 0).double().mean(1), (sub < 0).double().mean(1)], 1
        )
        labels = mean_shift(feats.cpu().numpy(), self.bandwidth)
        sizes = np.bincount(labels)
        biggest = int(labels[np.argmax(sizes[labels])])  # the first row in a largest cluster
        s2 = torch.zeros(n, dtype=torch.bool)
        s2[ok.cpu().nonzero().squeeze(1)[torch.from_numpy(labels == biggest)]] = True
        mask = s1 & s2.to(x.device)
        return (mask if bool(mask.any()) else s1), median

    def _aggregate(self, x: Tensor) -> Tensor:
        mask, median = self.selected(x)
        if not bool(mask.any()):
            return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        norms = row_norms(x)[mask]
        scale = torch.where(norms > median, median / norms, 1.0) / int(mask.sum())
        return weighted_rows(scale, x[mask])
