"""FLTrust (Cao, Fang, Liu & Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
Bootstrapping", NDSS 2021, Algorithm 1 and Eq. 1-3)."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from robustfl.aggregators._cosine import row_norms, weighted_rows
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

    Norms and the inner products with ``g0`` are accumulated in float64 (one pass over ``x`` each),
    the weighted sum is one matrix-vector product. Rows of norm 0, and rows whose norm or inner
    product with ``g0`` is not finite (NaN/Inf entries), get score 0.
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
        return self._scores(x, self._require(x))[0]

    def _scores(self, x: Tensor, g0: Tensor) -> tuple[Tensor, Tensor]:
        """``(ReLU(cos(x_i, g0)), ||x_i||)`` in float64; 0 scores for zero and non-finite rows."""
        norms = row_norms(x)
        dots = (x @ g0.to(x.dtype)).to(torch.float64)
        g0n = float(torch.linalg.vector_norm(g0, dtype=torch.float64))
        usable = torch.isfinite(norms) & (norms > 0) & torch.isfinite(dots)
        cos = dots / torch.where(usable, norms, 1.0) / (g0n if g0n > 0 else 1.0)
        return torch.where(usable, cos.clamp(0.0, 1.0), 0.0), norms

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
        g0 = self._require(x)
        ts, norms = self._scores(x, g0)
        total = float(ts.sum())
        if total == 0:
            return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        g0n = torch.linalg.vector_norm(g0, dtype=torch.float64)
        weights = ts * g0n / torch.where(ts > 0, norms, 1.0) / total
        keep = ts > 0
        return weighted_rows(weights[keep], x[keep]) if not bool(keep.all()) else weighted_rows(weights, x)
