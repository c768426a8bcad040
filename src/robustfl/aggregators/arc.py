"""Adaptive robust clipping (ARC), a pre-aggregator (Allouah et al. 2024, arXiv:2405.14432)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._distances import finite_rows
from robustfl.aggregators._in_place import scale_rows_in_place, writable
from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, PreAggregator, check_int, require_n
from robustfl.checks import check_bool


@AGGREGATORS.register("arc")
class ARC(OneThreadWhenSmall, PreAggregator):
    """Clip the ``k = floor(2 (f/n) (n - f))`` largest-norm rows to the norm of the ``(k+1)``-th
    largest: ``out_i = min(1, tau / ||x_i||) x_i`` with ``tau = ||x_pi(n-k)||`` for norms sorted
    ascending (ByzFL's definition; ``k`` is computed in exact integer arithmetic). Rows at or below
    ``tau`` are unchanged. Output ``Tensor[n, d]``.

    Norms are taken in the input dtype, and again in float64 when float32 overflows (a 1e38 row is
    finite and is scaled, not zeroed). A non-finite row has no direction to keep: it counts as the
    largest and is replaced by the zero vector. For ``f <= n/2`` we have ``k >= f``, so every such row is
    among the clipped ones.

    ``in_place=False`` (default) never writes the input and returns a new ``[n, d]``. With
    ``in_place=True`` the rule may overwrite its input, as ByzFL's ARC does: only the clipped rows are
    rescaled where they are (``k`` rows read and written instead of a full copy), and the input is
    returned. Use it when the messages are not needed after the call; an input that requires grad, or
    one the base class converts (half precision), is still left unwritten.
    """

    breakdown = "needs n >= f (clips floor(2f(n-f)/n) rows)"

    def __init__(self, f: int = 0, in_place: bool = False) -> None:
        self.f = check_int("f", f)
        self.in_place = check_bool("in_place", in_place)

    def check_n(self, n: int) -> None:
        require_n("ARC", n, self.f, n >= self.f, "n >= f")

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        k = (2 * self.f * (n - self.f)) // n
        if k == 0:
            return x if writable(x, self.in_place) else x.clone()
        norms = torch.linalg.vector_norm(x, dim=1)
        ok = None
        if not bool(torch.isfinite(norms).all()):
            ok = finite_rows(x)
            if bool((torch.isinf(norms) & ok).any()):
                norms = torch.linalg.vector_norm(x.to(torch.float64), dim=1)
            norms = torch.where(ok, norms, float("inf"))
        tau = norms.kthvalue(n - k).values  # the (k+1)-th largest norm
        scale = torch.where(norms > tau, tau / norms, 1.0).to(x.dtype)
        if writable(x, self.in_place):
            return scale_rows_in_place(x, scale, ok)
        # one fused pass (read x, write out): a non-destructive ARC cannot do less. Copying x and
        # rescaling only the clipped rows in place moves more memory and measured slower.
        out = x * scale.unsqueeze(1)
        if ok is not None:
            out = torch.where(ok.unsqueeze(1), out, torch.zeros((), dtype=x.dtype, device=x.device))
        return out
