"""Norm clipping: the static pre-aggregator and centered clipping (Karimireddy et al. 2021)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustfl.aggregators._distances import distances_to_point
from robustfl.aggregators._in_place import scale_rows_in_place, writable
from robustfl.aggregators._small import SERIAL_NUMEL, OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS, PreAggregator, check_int, check_positive
from robustfl.checks import check_bool


@AGGREGATORS.register("clipping", "clip")
class Clipping(OneThreadWhenSmall, PreAggregator):
    """Static norm clipping (ByzFL ``Clipping``): ``x_i <- x_i * min(1, c / ||x_i||)``, ``Tensor[n, d]``.

    Every output row has norm at most ``c``. A row whose norm is undefined (NaN/Inf entries) has no
    direction to keep and becomes the zero vector; a finite row whose squared norm overflows (e.g.
    1e38 in float32) is clipped exactly, its norm computed after rescaling by its largest entry.

    ``in_place=True`` lets the rule overwrite its input, as ByzFL's ``Clipping`` does: only rows above
    ``c`` (and undefined ones) are rewritten and the input is returned (see ``ARC``).
    """

    breakdown = "bounds each row's norm; robust only when followed by a robust rule"

    def __init__(self, c: float = 2.0, in_place: bool = False) -> None:
        self.c = check_positive("c", c)
        self.in_place = check_bool("in_place", in_place)

    def _aggregate(self, x: Tensor) -> Tensor:
        norms = torch.linalg.vector_norm(x, dim=1)
        bad = ~torch.isfinite(norms)
        if bool(bad.any()):
            idx = bad.nonzero().squeeze(1)
            rows = x.index_select(0, idx)
            peak = rows.abs().amax(dim=1)
            finite = torch.isfinite(rows).all(dim=1) & (peak > 0)
            safe_peak = torch.where(finite, peak, torch.ones_like(peak))
            rescaled = torch.linalg.vector_norm(rows / safe_peak.unsqueeze(1), dim=1) * safe_peak
            norms = norms.clone()
            norms[idx] = torch.where(finite, rescaled, torch.full_like(rescaled, float("nan")))
        scale = torch.where(norms > self.c, self.c / norms, torch.ones_like(norms))
        defined = torch.isfinite(norms)
        if writable(x, self.in_place):
            return scale_rows_in_place(x, scale.to(x.dtype), defined)
        out = x * scale.unsqueeze(1)
        if not bool(defined.all()):
            out[~defined] = 0.0
        return out


DIRECT_NUMEL = 1 << 20
"""Centered clipping on inputs up to this many elements (4 MiB of float32) forms ``u = x - v``
(``_direct``): fewer, cheaper torch calls than ``_streaming``, and on this range fewer CPU seconds even
with the extra ``[n, d]`` write (measured with the caches flushed between calls: 210 against 270 us at
``[16, 10^4]``, 535 against 595 us at ``[64, 10^4]``, even at ``[16, 65536]``); larger inputs stream."""

TINY_NUMEL = DIRECT_NUMEL
"""Up to this many elements a one-step call from a centre already on the CPU in ``x``'s dtype takes
``_tiny_step``: ``_direct``'s calls without its checks. On the smallest inputs (``n = 16, d = 10^3``)
the whole call takes 20-40 us and each check or Python frame saved on the way is a measurable part."""


def tau_in(tau: float, dtype: torch.dtype) -> float:
    """``tau`` capped at ``dtype``'s largest finite value (a larger radius clips nothing either)."""
    return tau if tau < 3.0e38 else min(tau, torch.finfo(dtype).max)


def clip_factors_(dist: np.ndarray, tau: float) -> bool:
    """In place, ``dist_i <- tau / max(dist_i, tau) = min(1, tau / dist_i)``, or ``False`` with ``dist``
    untouched when a norm is not finite; the bits of ``clip_factors`` (both round once, in the same
    dtype). NumPy on the ``[n]`` norms of a CPU tensor: a torch call on 16 numbers costs 1-3 us, a
    NumPy call a fraction of that, and on the smallest inputs such calls are a fifth of the time."""
    top = dist.max()  # propagates NaN and Inf
    if not math.isfinite(top):
        return False
    if tau <= 0:
        dist.fill(0.0)
    elif top <= dist.dtype.type(tau):  # no row is clipped: every factor is tau / tau = 1
        dist.fill(1.0)
    else:
        np.divide(tau, np.maximum(dist, tau, out=dist), out=dist)
    return True


def clip_factors(dist: Tensor, tau: float) -> Tensor:
    """``min(1, tau / dist_i)`` computed as ``tau / max(dist_i, tau)``: one rounding, exactly 1 for
    ``dist_i <= tau``, no division by zero; ``0`` everywhere for ``tau = 0``. Out of place (autograd).
    ``tau`` must be representable in ``dist.dtype`` (``tau_in``)."""
    return torch.div(tau, dist.clamp(min=tau)) if tau > 0 else torch.zeros_like(dist)


@AGGREGATORS.register("centered-clipping", "cc")
class CenteredClipping(OneThreadWhenSmall):
    """Centered clipping, seed 002 "Aggregation with Centered Clipping" (ByzFL ``CenteredClipping``).

    ``v_{l+1} = v_l + (1/n) sum_i clip_tau(x_i - v_l)`` for ``l = 0..L-1``, with
    ``clip_tau(u) = u * min(1, tau / ||u||)``. The output ``v_L`` is kept as the next call's ``v_0``
    (the previous round's aggregate, as in the seed); the first call starts from ``m`` (``None``:
    zeros), and ``reset()`` returns to it.

    Non-finite rows (and rows whose squared norm overflows) have no clipped direction and contribute
    ``0`` to the sum (still counted in ``n``), so a Byzantine row moves ``v`` by at most ``tau / n`` per
    iteration and the output stays finite.
    """

    breakdown = "fewer than n/2 Byzantine rows (with tau of the order of honest spread)"
    serial_below = SERIAL_NUMEL  # its small path: elementwise ops, row norms, NumPy and one mv per step

    def __init__(self, m: Tensor | None = None, L: int = 1, tau: float = 100.0) -> None:
        if m is not None and not (
            isinstance(m, Tensor) and m.dim() == 1 and m.is_floating_point() and bool(torch.isfinite(m).all())
        ):
            raise ValueError("m must be None or a finite 1-D float tensor of length d (the initial centre)")
        self.m = m
        self.L = check_int("L", L, minimum=1)
        self.tau = check_positive("tau", tau, allow_zero=True)
        self._v: Tensor | None = None

    def reset(self) -> None:
        self._v = None

    def state_dict(self) -> dict[str, Any]:
        return {"center": self._v}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._v = state["center"]

    def params(self) -> dict[str, Any]:
        return {"m": self.m, "L": self.L, "tau": self.tau}

    @property
    def center(self) -> Tensor | None:
        """The centre the next call starts from (``None`` until the first call when ``m`` is ``None``)."""
        return self._v if self._v is not None else self.m

    def _start(self, x: Tensor) -> Tensor:
        d = x.shape[1]
        v = self.center
        if v is None:
            return torch.zeros(d, dtype=x.dtype, device=x.device)
        if v.shape[0] != d:
            raise ValueError(
                f"CenteredClipping: its centre has d={v.shape[0]} but the messages have d={d}; "
                "pass m of length d, or call reset() before aggregating vectors of another size"
            )
        if v.dtype == x.dtype and v.device == x.device:  # skip ``to``'s call
            return v
        return v.to(device=x.device, dtype=x.dtype)

    def _aggregate(self, x: Tensor) -> Tensor:
        v = self._v
        n, d = x.shape
        if (
            v is not None
            and n * d <= TINY_NUMEL
            and self.L == 1
            and x.is_cpu
            and v.is_cpu
            and x.dtype == v.dtype
            and v.shape[0] == d
            and not (x.requires_grad or v.requires_grad)
        ):
            out = self._tiny_step(x, v, n)
            if out is not None:
                self._v = out
                return out.clone()
        v = self._start(x)
        out = self._direct(x, v) if n * d <= DIRECT_NUMEL else self._streaming(x, v)
        if out is None:
            with single_thread(x.device):  # a small input that ``serial_below`` may have left on all threads
                out = self._streaming(x, v)
        self._v = out.detach() if out.requires_grad else out  # detach costs a call; skip it when a no-op
        return out.clone()

    def _tiny_step(self, x: Tensor, v: Tensor, n: int) -> Tensor | None:
        """``_direct`` for one step from a CPU centre of the right dtype and size, without autograd:
        the same calls, none of the checks (the caller made them). ``None`` as ``_direct``."""
        u = x - v
        dist = torch.linalg.vector_norm(u, dim=1)
        if not clip_factors_(dist.numpy(), tau_in(self.tau, x.dtype)):
            return None
        return torch.addmv(v, u.T, dist, alpha=1.0 / n)

    def _direct(self, x: Tensor, v: Tensor) -> Tensor | None:
        """Small inputs: the update as written, from the ``[n, d]`` differences ``u = x - v`` (in cache),
        about half the torch calls of ``_streaming``; ``None`` when a difference has no finite norm.
        Without autograd on CPU the ``[n]`` stage runs in NumPy (``clip_factors_``)."""
        n, tau = x.shape[0], tau_in(self.tau, x.dtype)
        tiny = x.is_cpu and not (x.requires_grad or v.requires_grad)
        for _ in range(self.L):
            u = x - v
            dist = torch.linalg.vector_norm(u, dim=1)
            if tiny:
                if not clip_factors_(dist.numpy(), tau):
                    return None
                s = dist
            elif not math.isfinite(dist.detach().max()):
                return None
            else:
                s = clip_factors(dist, tau)
            v = torch.addmv(v, u.T, s, alpha=1.0 / n)
        return v

    def _streaming(self, x: Tensor, v: Tensor) -> Tensor:
        """Any input: distances from one matrix-vector product per step and no ``[n, d]`` temporary;
        rows without a finite norm contribute nothing (still counted in ``n``)."""
        n, tau = x.shape[0], tau_in(self.tau, x.dtype)
        from_zero = self.center is None
        norms = torch.linalg.vector_norm(x, dim=1)
        sq = norms.square()
        usable = torch.isfinite(sq)
        if not bool(usable.all()):
            x, norms, sq = x[usable], norms[usable], sq[usable]
        for step in range(self.L):
            dist = norms if step == 0 and from_zero else distances_to_point(x, sq, v)
            # s_i = min(1, tau / ||x_i - v||); v + (1/n) sum_i s_i (x_i - v) as one fused addmv
            s = clip_factors(dist, tau)
            if s.requires_grad:  # the same update with beta as a tensor, so autograd sees it
                v = torch.addmv(v * (1.0 - s.sum() / n), x.T, s, alpha=1.0 / n)
            else:
                v = torch.addmv(v, x.T, s, beta=1.0 - float(s.sum()) / n, alpha=1.0 / n)
        return v
