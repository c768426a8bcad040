"""FLTrust (Cao, Fang, Liu & Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
Bootstrapping", NDSS 2021, Algorithm 1 and Eq. 1-3)."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from robustfl.aggregators._cosine import cosine_to
from robustfl.aggregators._distances import finite_rows
from robustfl.aggregators.base import AGGREGATORS, Aggregator


@runtime_checkable
class ReferenceRule(Protocol):
    """A rule that needs the server's own update each round (``needs_reference = True``): the server
    calls ``set_reference(g0)`` before aggregating. ``isinstance(rule, ReferenceRule)`` tells."""

    needs_reference: ClassVar[bool]

    def set_reference(self, g0: Tensor) -> None: ...


@AGGREGATORS.register("fltrust")
class FLTrust(Aggregator):
    """Trust scores from the server's own update ``g0`` (computed on a small clean root data set):

    ``TS_i = ReLU(cos(x_i, g0))``, ``x_i' = (||g0|| / ||x_i||) x_i`` (norm matching) and
    ``out = sum_i TS_i x_i' / sum_i TS_i``; the zero vector when every score is 0 (no update is
    trusted). The paper's root set has 100 examples; its server update is one local-training step
    sequence on it, like a client's.

    The server hands the rule its update each round before aggregating: ``rule.set_reference(g0)``.
    ``needs_reference = True`` tells the engine to compute it; calling the rule without one raises a
    ``ValueError``. The reference stays until replaced or ``reset()``.

    Cosines and norms are computed in float64 from unit-vector differences (accurate for nearly
    parallel rows, such as model weights). Rows of norm 0 and non-finite rows get score 0.
    """

    breakdown = "any number of Byzantine rows (trust comes from the server's root data set)"
    needs_reference: ClassVar[bool] = True

    def __init__(self) -> None:
        self._g0: Tensor | None = None

    def set_reference(self, g0: Tensor) -> None:
        """The server's update ``g0: Tensor[d]`` for this round (finite, floating point)."""
        if not isinstance(g0, Tensor) or g0.dim() != 1 or not g0.is_floating_point():
            got = tuple(g0.shape) if isinstance(g0, Tensor) else type(g0).__name__
            raise ValueError(f"FLTrust reference g0 must be a 1-D float Tensor[d], got {got}")
        if not bool(torch.isfinite(g0).all()):
            raise ValueError("FLTrust reference g0 must be finite (the server's own update)")
        self._g0 = g0.detach().clone()

    @property
    def reference(self) -> Tensor | None:
        return self._g0

    def reset(self) -> None:
        self._g0 = None

    def trust_scores(self, x: Tensor) -> Tensor:
        """``ReLU(cos(x_i, g0))`` per row, float64 ``[n]`` (0 for zero and non-finite rows)."""
        g0 = self._require(x)
        ok = finite_rows(x)
        rows = torch.where(ok.unsqueeze(1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        return torch.where(ok, cosine_to(rows, g0).clamp(min=0.0), 0.0)

    def _require(self, x: Tensor) -> Tensor:
        if self._g0 is None:
            raise ValueError(
                "FLTrust needs the server's update: call set_reference(g0) before aggregating "
                "(the engine does so for rules with needs_reference)"
            )
        if self._g0.shape[0] != x.shape[1]:
            raise ValueError(
                f"FLTrust reference has d={self._g0.shape[0]} but the messages have d={x.shape[1]}; "
                "call set_reference with this round's server update"
            )
        return self._g0.to(x.device)

    def _aggregate(self, x: Tensor) -> Tensor:
        ts = self.trust_scores(x)
        total = float(ts.sum())
        if total == 0:
            return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        g0 = self._require(x).to(torch.float64)
        keep = ts > 0
        rows = x[keep].to(torch.float64)
        norms = torch.linalg.vector_norm(rows, dim=1)
        weights = ts[keep] * torch.linalg.vector_norm(g0) / norms / total
        return (weights @ rows).to(x.dtype)
