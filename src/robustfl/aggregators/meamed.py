"""Mean around median (Meamed; Xie, Koyejo & Gupta 2018, "Generalized Byzantine-tolerant SGD")."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, check_int, require_n
from robustfl.aggregators.coordinatewise import order_statistics


@AGGREGATORS.register("meamed")
class Meamed(OneThreadWhenSmall):
    """Per coordinate ``j``: average the ``n - f`` values nearest to the coordinate's median
    ``med_j`` (the midpoint of the two middle values when ``n`` is even, as ByzFL's ``quantile(0.5)``).

    Computed from one sort of each coordinate (``order_statistics``): the ``n - f`` values nearest to
    the median are a contiguous window ``[s, s + n - f)`` of the sorted column, ``s`` in ``0..f``,
    namely the window of smallest ``max(med - S[s], S[s+n-f-1] - med)`` (lowest ``s`` on ties).
    Sorting puts NaN last (as +inf) and +-Inf at the ends, so with at most ``f < n/2`` non-finite
    values in a column the median and the chosen window are finite and the output lies inside the
    honest values' range.
    """

    breakdown = "needs n > 2f"

    def __init__(self, f: int = 0) -> None:
        self.f = check_int("f", f)

    def check_n(self, n: int) -> None:
        require_n("Meamed", n, self.f, n > 2 * self.f, "n > 2f")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        f, k = self.f, n - self.f
        if f == 0:
            return x.mean(dim=0)
        s = order_statistics(x, 0, n)  # [n, d], each column sorted
        med = 0.5 * (s[(n - 1) // 2] + s[n // 2])
        with torch.no_grad():  # the window is chosen, not differentiated
            cost = torch.maximum(med - s[: f + 1], s[k - 1 :] - med)
            cost = torch.nan_to_num_(cost, nan=float("inf"), posinf=float("inf"))
            start = cost.argmin(dim=0)
            del cost
        rows = torch.arange(n, device=x.device).unsqueeze(1)
        outside = (rows < start) | (rows >= start + k)
        # zero the sorted copy outside the window in place (it is ours): no second [n, d] tensor
        kept = torch.where(outside, 0.0, s) if s.requires_grad else s.masked_fill_(outside, 0.0)
        return kept.sum(dim=0) / k
