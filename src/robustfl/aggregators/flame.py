"""FLAME (Nguyen et al., "FLAME: Taming Backdoors in Federated Learning", USENIX Security 2022,
Algorithm 1): cosine clustering, clipping by the median norm, Gaussian noise."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._cosine import cosine_distances, row_norms, weighted_rows
from robustfl.aggregators.base import AGGREGATORS, Aggregator, check_int, check_positive
from robustfl.utils import make_generator


def majority_cluster(dist: Tensor) -> Tensor:
    """Indices of the first component of at least ``floor(n/2) + 1`` points formed by single linkage
    on the distance matrix ``dist [n, n]`` (the smallest-radius majority group).

    This is exactly the cluster HDBSCAN labels with ``min_cluster_size = n/2 + 1``, ``min_samples = 1``
    and ``allow_single_cluster = True`` (HDBSCAN: Campello et al., 2013; FLAME fixes only the minimum
    cluster size; the other two are our reading): with ``min_samples = 1``
    the mutual-reachability hierarchy is the single-linkage one; a majority-sized cluster can never
    split into two such clusters, so the root is the only candidate, and HDBSCAN keeps in it exactly the
    points that leave last, those of the smallest majority-sized node. Everything else is an outlier.
    """
    n = dist.shape[0]
    need = n // 2 + 1
    if n <= 2:
        return torch.arange(n)
    from scipy.cluster.hierarchy import linkage  # lazy: SciPy's import costs ~25 MiB and 0.5 s
    from scipy.spatial.distance import squareform

    z = linkage(squareform(dist.detach().cpu().numpy(), checks=False), method="single")
    members: list[list[int]] = [[i] for i in range(n)]
    for a, b, _, _ in z:
        merged = members[int(a)] + members[int(b)]
        members.append(merged)
        if len(merged) >= need:
            return torch.as_tensor(sorted(merged), dtype=torch.long)
    raise AssertionError("single linkage always ends in one cluster of all n points")  # pragma: no cover


@AGGREGATORS.register("flame")
class FLAME(Aggregator):
    """Cluster, clip, average, add noise:

    1. Admit the rows in the HDBSCAN majority cluster of the pairwise cosine distances
       ``1 - cos(x_i, x_j)`` (see :func:`majority_cluster`; minimum cluster size ``n/2 + 1``).
    2. ``S = median_i ||x_i||`` over all rows (the paper's median distance ``||w_i - G||`` of the local
       models to the global model; messages here are those updates); clip each admitted row to norm ``S``.
    3. Average the clipped admitted rows and add ``N(0, (lam * S)^2)`` to every coordinate
       (``lam = 0.001``, the paper's value for image classification).

    The paper clusters the local models' weight vectors; here the messages are clustered as they
    arrive (updates for FedAvg-style algorithms). Non-finite rows
    are never admitted. Cosines are computed in float64 from centred unit vectors, so rows with a large
    common part still separate. The noise comes from a generator seeded with
    ``derive_seed(seed, "flame")``; ``reset()`` restarts it.
    """

    breakdown = "fewer than n/2 Byzantine rows (the honest rows must hold the majority cluster)"

    def __init__(self, lam: float = 0.001, seed: int = 0) -> None:
        self.lam = check_positive("lam", lam, allow_zero=True)
        self.seed = check_int("seed", seed)
        self._gen = make_generator(self.seed, "flame")

    def reset(self) -> None:
        self._gen = make_generator(self.seed, "flame")

    def admitted(self, x: Tensor) -> Tensor:
        """Boolean ``[n]``: the rows in the majority cosine cluster."""
        return self._admitted(x, torch.isfinite(row_norms(x)))

    def _admitted(self, x: Tensor, ok: Tensor) -> Tensor:
        if bool(ok.all()):
            return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device).index_fill_(
                0, majority_cluster(cosine_distances(x)).to(x.device), True
            )
        idx = ok.nonzero().squeeze(1)
        mask = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if idx.numel() > 0:
            mask[idx[majority_cluster(cosine_distances(x[idx])).to(x.device)]] = True
        return mask

    def _aggregate(self, x: Tensor) -> Tensor:
        norms = row_norms(x)
        ok = torch.isfinite(norms)
        mask = self._admitted(x, ok)
        if not bool(mask.any()):
            return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        s = float(np.median(norms[ok].detach().cpu().numpy()))
        # mean of the admitted rows, each scaled by min(1, S / ||x_i||): one matrix-vector product
        weights = torch.where(norms > s, s / norms, 1.0) / int(mask.sum())
        out = weighted_rows(weights[mask], x[mask]).to(torch.float64)
        if self.lam > 0:
            noise = torch.randn(out.shape, generator=self._gen, dtype=torch.float64)
            out = out + self.lam * s * noise.to(out.device)
        return out.to(x.dtype)
