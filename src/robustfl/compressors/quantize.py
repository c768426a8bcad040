"""Per-coordinate quantisers: scaled sign, QSGD and TernGrad.

Each sends a per-row scale (``Float``) and per-coordinate codes. The names of the per-coordinate fields
are listed in ``coordinate_fields`` so ``Compose`` can send the codes of only the selected coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from robustfl.checks import check_int
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message, Randomness, uniform
from robustfl.compressors.codecs import EliasOmegaSparse, EliasSparse, Float, UInt


class Elementwise(Compressor):
    """A compressor whose payload is per-row scales plus per-coordinate codes (``coordinate_fields``)."""

    coordinate_fields: ClassVar[tuple[str, ...]]


def _codes(msg: Message, name: str) -> Tensor:
    """Per-coordinate field ``name`` as ``Tensor[n, d]``; a wrong size raises ``ValueError``."""
    t = msg.get(name)
    if t.numel() != msg.n * msg.d:
        raise ValueError(
            f"{msg.compressor} message field {name!r} has {t.numel()} codes, expected {msg.n * msg.d}"
        )
    return t.reshape(msg.n, msg.d)


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Precision to compute in: float32 for half types and float32, float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def row_stat(x: Tensor, stat: Callable[[Tensor], Tensor]) -> Tensor:
    """``m_i * stat(x_i / m_i)`` per row (``Tensor[n, 1]``, float64) with ``m_i = max |x_i|``: a
    homogeneous statistic (a norm, a mean magnitude) computed on entries in ``[-1, 1]``, so nothing
    overflows. Saturated at the largest finite value of ``x.dtype``, so it is always sendable at the
    input's precision; a row with a non-finite entry gives a non-finite result."""
    work = x.detach().to(work_dtype(x.dtype))
    big = work.abs().amax(dim=1, keepdim=True)
    safe = torch.where((big > 0) & torch.isfinite(big), big, torch.ones_like(big))
    out = safe.double() * stat(work / safe).double()
    return torch.where(torch.isfinite(out), out.clamp_max(torch.finfo(x.dtype).max), out)


def row_norm(x: Tensor) -> Tensor:
    """``||x_i||_2`` of each row without overflow (``row_stat``)."""
    return row_stat(x, lambda y: torch.linalg.vector_norm(y, dim=1, keepdim=True))


def _scale_field(msg: Message, name: str) -> Tensor:
    s = msg.get(name)
    if s.numel() != msg.n:
        raise ValueError(f"{msg.compressor} message field {name!r} has {s.numel()} entries, expected {msg.n}")
    return s.reshape(msg.n, 1).to(msg.dtype)


@COMPRESSORS.register("sign", "scaled_sign")
class Sign(Elementwise):
    """Scaled sign (EF-signSGD, Karimireddy et al. 2019): ``C(x) = (||x||_1 / d) sign(x)``.

    1 bit per coordinate plus one float scale: ``d + 32`` bits per sender. ``sign(0)`` is sent as ``+``.
    Biased; contractive with ``delta(x) = ||x||_1^2 / (d ||x||_2^2) >= 1 / d`` (``delta(d) = 1/d``).
    """

    name = "sign"
    coordinate_fields = ("signs",)

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        n, d = x.shape
        scale = row_stat(x, lambda y: y.abs().mean(dim=1, keepdim=True))  # a float32 sum can overflow
        fields = {
            "scale": Field(scale.to(x.dtype), Float(x.dtype)),
            "signs": Field((x < 0).to(torch.uint8), UInt(1)),
        }
        return Message(self.name, n, d, x.dtype, fields)

    def _decompress(self, msg: Message) -> Tensor:
        signs = _codes(msg, "signs")
        return _scale_field(msg, "scale") * (1 - 2 * signs.to(msg.dtype))

    def delta(self, d: int) -> float:
        return 1.0 / d


_SPARSE_CODES: dict[str, type[EliasSparse]] = {"elias": EliasSparse, "elias-omega": EliasOmegaSparse}
"""QSGD's ``coding`` names of the signed gap/sign/level codes (gamma, omega)."""


@COMPRESSORS.register("qsgd")
class QSGD(Elementwise):
    """QSGD with ``s`` levels (Alistarh et al., 2017): ``Q_s(x)_i = ||x||_2 sign(x_i) l_i / s`` where
    ``l_i = floor(s |x_i| / ||x||_2 + u_i)``, ``u_i ~ U[0, 1)`` (stochastic rounding).

    Unbiased with ``omega = min(d / s^2, sqrt(d) / s)`` (QSGD Lemma 3.1). The norm is one float.
    ``coding="elias"``: the levels use QSGD's gap/sign/level Elias code (``codecs.EliasSparse``),
    ``32 + sum over non-zeros of (gamma(gap) + 1 + gamma(level))`` bits; ``coding="elias-omega"``: the
    same stream with Elias-omega codes (``codecs.EliasOmegaSparse``, the code QSGD's paper names).
    ``coding="fixed"``: a plain
    fixed-width count, ``32 + d (1 + ceil(log2(s + 1)))`` bits. With ``s = 1`` this is 1-bit QSGD, the
    l2-quantisation of seed 004 §3.3.1. A row with a non-finite entry gets all levels 0 (its norm is
    sent as is, so it decodes to NaN) instead of undefined integer codes.

    Finite rows always decode to finite values: the norm is computed without overflow (``row_norm``:
    rescaled before squaring, in float64) and decoded as ``norm * (level / s)`` with ``level / s <= 1``.
    A row whose norm exceeds the largest finite value of its dtype (e.g. ``> 65504`` in float16) sends
    that largest value as its norm: finite, but shrunk (biased) for that row.
    """

    name = "qsgd"
    unbiased = True

    def __init__(self, s: int = 1, coding: str = "elias") -> None:
        self.s = check_int("s", s, minimum=1)
        if s >= 2**62:
            raise ValueError(f"s must be < 2**62 (levels are int64), got {s}")
        if coding not in _SPARSE_CODES and coding != "fixed":
            raise ValueError(f"coding must be 'elias', 'elias-omega' or 'fixed', got {coding!r}")
        self.coding = coding

    @property
    def coordinate_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("levels", "signs") if self.coding == "fixed" else ("levels",)

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        n, d = x.shape
        norm = row_norm(x)
        work, wnorm = x.to(work_dtype(x.dtype)), norm.to(work_dtype(x.dtype))
        ratio = torch.where(wnorm > 0, work.abs() / wnorm.clamp_min(torch.finfo(work.dtype).tiny), 0.0)
        noise = uniform((n, d), rng, x.device).to(x.dtype).to(work.dtype)
        levels = torch.floor(ratio * self.s + noise).nan_to_num_(0.0).clamp_(0, self.s)  # non-finite rows: 0
        levels = levels.to(torch.int32 if self.s < 2**31 else torch.int64)
        fields = {"norm": Field(norm.to(x.dtype), Float(x.dtype))}
        if self.coding != "fixed":
            codec = _SPARSE_CODES[self.coding](self.s.bit_length())
            fields["levels"] = Field(torch.where(x < 0, -levels, levels), codec)
        else:
            fields["levels"] = Field(levels, UInt(self.s.bit_length()))
            fields["signs"] = Field((x < 0).to(torch.uint8), UInt(1))
        return Message(self.name, n, d, x.dtype, fields)

    def _decompress(self, msg: Message) -> Tensor:
        levels = _codes(msg, "levels")
        if levels.numel() and int(levels.abs().max()) > self.s:
            raise ValueError(f"qsgd message has a level above s={self.s}")
        work = work_dtype(msg.dtype)
        values = levels.to(work) / self.s  # in [-1, 1]: norm * (level / s) cannot overflow
        if self.coding == "fixed":
            values = values * (1 - 2 * _codes(msg, "signs").to(work))
        return (_scale_field(msg, "norm").to(work) * values).to(msg.dtype)

    def omega(self, d: int) -> float:
        return min(d / self.s**2, math.sqrt(d) / self.s)


@COMPRESSORS.register("terngrad")
class TernGrad(Elementwise):
    """TernGrad (Wen et al., 2017): ``T(x)_i = ||x||_inf sign(x_i) b_i``, ``b_i ~ Bernoulli(|x_i| / ||x||_inf)``.

    Unbiased; ``E||T(x)||^2 = ||x||_1 ||x||_inf`` (seed 004 Thm 3.7 with q = inf), so
    ``omega = ||x||_1 ||x||_inf / ||x||^2 - 1 <= sqrt(d) - 1``. Ternary codes are sent at 2 bits each
    (a fixed-width code; base-3 packing would reach log2 3 = 1.585): ``32 + 2 d`` bits per sender.
    """

    name = "terngrad"
    unbiased = True
    coordinate_fields = ("codes",)

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        n, d = x.shape
        scale = x.abs().amax(dim=1, keepdim=True)
        p = torch.where(scale > 0, x.abs() / scale.clamp_min(torch.finfo(x.dtype).tiny), 0.0)
        keep = uniform((n, d), rng, x.device).to(x.dtype) < p
        codes = keep.to(torch.uint8) * (1 + (x < 0).to(torch.uint8))  # 0: zero, 1: +scale, 2: -scale
        fields = {"scale": Field(scale, Float(x.dtype)), "codes": Field(codes, UInt(2))}
        return Message(self.name, n, d, x.dtype, fields)

    def _decompress(self, msg: Message) -> Tensor:
        codes = _codes(msg, "codes")
        if codes.numel() and int(codes.max()) > 2:
            raise ValueError("terngrad message has a code outside {0, 1, 2}")
        signed = (codes == 1).to(msg.dtype) - (codes == 2).to(msg.dtype)
        return _scale_field(msg, "scale") * signed

    def omega(self, d: int) -> float:
        return math.sqrt(d) - 1.0
