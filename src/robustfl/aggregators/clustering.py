"""Clipped clustering (Li, Ngai & Voigt, "An Experimental Study of Byzantine-Robust Aggregation Schemes
in Federated Learning", IEEE Transactions on Big Data, 2023; arXiv:2302.07173)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._cosine import cosine_distances, row_norms, weighted_rows
from robustfl.aggregators.base import AGGREGATORS, Aggregator, check_positive

Linkage = Literal["average", "single", "complete"]


def larger_cluster(dist: Tensor, method: Linkage = "average") -> Tensor:
    """Indices of the larger of the two clusters agglomerative clustering (``method`` linkage) finds
    on ``dist [n, n]``; ties go to the cluster holding row 0."""
    n = dist.shape[0]
    if n <= 2:
        return torch.arange(n)
    from scipy.cluster.hierarchy import fcluster, linkage  # lazy: SciPy's import costs ~25 MiB and 0.5 s
    from scipy.spatial.distance import squareform

    z = linkage(squareform(dist.detach().cpu().numpy(), checks=False), method=method)
    labels = fcluster(z, t=2, criterion="maxclust")
    sizes = {int(k): int((labels == k).sum()) for k in np.unique(labels)}
    best = max(sizes, key=lambda k: (sizes[k], k == labels[0]))
    return torch.as_tensor(np.flatnonzero(labels == best), dtype=torch.long)


@AGGREGATORS.register("clipped-clustering", "clippedclustering")
class ClippedClustering(Aggregator):
    """Clip every row to ``tau = min(median of all norms seen so far, max_tau)``, split the clipped
    rows into two clusters by agglomerative clustering (``linkage``, default average) on their pairwise
    cosine distances, and return the mean of the larger cluster.

    The median runs over the norms of every row this rule has received (its history, explicit state:
    ``state_dict()``, ``load_state_dict()``, ``reset()``), as in the authors' implementation; the first
    call uses that call's norms. Non-finite rows add no norm and are never averaged. Cosines are
    computed in float64 from centred unit vectors (accurate for rows with a large common part).
    """

    breakdown = "fewer than n/2 Byzantine rows (they must fall in the smaller cluster)"

    def __init__(self, max_tau: float = 1e5, linkage: Linkage = "average") -> None:
        self.max_tau = check_positive("max_tau", max_tau)
        if linkage not in ("average", "single", "complete"):
            raise ValueError(f"linkage must be 'average', 'single' or 'complete', got {linkage!r}")
        self.linkage: Linkage = linkage
        self._norms: list[float] = []

    @property
    def threshold(self) -> float | None:
        """The clipping threshold the last call used (``None`` before any call)."""
        return min(float(np.median(self._norms)), self.max_tau) if self._norms else None

    def state_dict(self) -> dict[str, Any]:
        return {"norm_history": torch.tensor(self._norms, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        norms = state.get("norm_history")
        if not isinstance(norms, Tensor) or norms.dim() != 1:
            raise ValueError("ClippedClustering state 'norm_history' must be a 1-D Tensor of norms")
        self._norms = [float(v) for v in norms]

    def reset(self) -> None:
        self._norms = []

    def _aggregate(self, x: Tensor) -> Tensor:
        norms = row_norms(x)
        ok = torch.isfinite(norms)
        if not bool(ok.any()):
            return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        rows, norms = (x, norms) if bool(ok.all()) else (x[ok], norms[ok])
        self._norms.extend(norms.tolist())
        tau = self.threshold
        assert tau is not None
        # clipping keeps directions, so the clusters come from the rows themselves
        chosen = larger_cluster(cosine_distances(rows), self.linkage).to(x.device)
        scale = torch.where(norms > tau, tau / norms, 1.0)[chosen] / chosen.numel()
        return weighted_rows(scale, rows.index_select(0, chosen))
