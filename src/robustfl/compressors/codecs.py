"""How one payload field is written on the wire, and exactly how many bits that takes.

A codec maps each row of a tensor (its last dimension) to a bit string and back. ``bits`` is the exact
length of those bit strings, so a message's bit count is the sum of its fields' codec lengths; the
frame header of ``wire.py`` (shapes, lengths, checksum) is extra.

- ``Float(dtype)``: IEEE values at their wire precision (16, 32 or 64 bits each).
- ``UInt(b)``: non-negative integers packed at ``b`` bits each (signs, quantisation levels, indices).
- ``EliasSparse(level_bits)``: the QSGD code (Alistarh et al., 2017, "efficient coding"): for each non-zero
  entry of a signed integer row, in order, the Elias-gamma code of the gap to the previous non-zero
  position (positions are 1-based, so a gap is >= 1), one sign bit, and the Elias-gamma code of
  ``|level| >= 1``. Zeros cost nothing. Elias *gamma* is ``2 floor(log2 v) + 1`` bits for ``v >= 1``;
  it is QSGD's default here (for QSGD's mostly small gaps and levels it is within a few percent of the
  omega code below, shorter on dense levels: docs/RESULTS.md, and its decoder is faster).
  Levels are below ``2**level_bits`` (the wire parameter); the decoder refuses wider codes, and gap
  codes wider than ``bit_length(d)``, before reading them, and parses a row in bounded chunks.
- ``EliasOmegaSparse(level_bits)``: the same (gap, sign, level) stream with Elias' *omega* code
  (Elias, 1975, IEEE Trans. Inf. Theory 21(2)), the recursive code that QSGD's "efficient coding"
  names and Wang et al. (NeurIPS 2018, §3.5) use for QSGD: ``omega(1) = 0``, and for ``n >= 2``
  the groups of ``omega(bit_length(n) - 1)`` without its final 0, then ``n`` in binary (MSB first),
  then a terminating 0. Its length is ``1 + sum_k bit_length(n_k)`` over ``n_0 = n``,
  ``n_{k+1} = bit_length(n_k) - 1`` while ``n_k >= 2``. Offset convention: none is needed, every
  coded value is ``>= 1`` (gaps between 1-based positions, and ``|level|`` of non-zeros only), so
  ``n`` is coded as itself. A group holds ``n + 1`` bits where ``n`` is the previous group's value;
  the decoder refuses any group wider than the cap (``bit_length(d)`` for gaps, ``level_bits`` for
  levels) before reading it, so group widths grow strictly up to the cap and a code is parsed in
  at most ``cap`` steps, reading at most its own length in bits: a chunk of the row costs a bounded
  number of array passes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

FLOAT_BITS: dict[torch.dtype, int] = {
    torch.float16: 16,
    torch.bfloat16: 16,
    torch.float32: 32,
    torch.float64: 64,
}
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float16: 1,
    torch.bfloat16: 2,
    torch.float32: 3,
    torch.float64: 4,
}
CODE_DTYPES: dict[int, torch.dtype] = {v: k for k, v in DTYPE_CODES.items()}


def index_bits(d: int) -> int:
    """Bits of one index into ``range(d)``: ``ceil(log2 d)`` (at least 1)."""
    return max(1, (d - 1).bit_length())


def gamma_length(v: Tensor) -> Tensor:
    """Elias-gamma code length of integers ``1 <= v < 2**53``: ``2 floor(log2 v) + 1``.

    ``frexp`` writes ``v = m 2**e`` with ``m`` in [0.5, 1), so ``floor(log2 v) = e - 1`` exactly.
    """
    return 2 * (torch.frexp(v.double()).exponent.long() - 1) + 1


def as_rows(t: Tensor) -> Tensor:
    """View a field as rows: the last dimension is one row (a 0-d tensor is one row of one value)."""
    if t.dim() == 0:
        return t.reshape(1, 1)
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


class Codec(ABC):
    """Encodes the rows of a tensor into bit strings (numpy bool arrays) and decodes them back."""

    tag: ClassVar[int]

    @abstractmethod
    def bits(self, t: Tensor) -> Tensor:
        """Exact encoded length in bits of each row of ``t`` (``Tensor[rows]`` of int64, on CPU)."""

    @abstractmethod
    def encode(self, t: Tensor) -> list[np.ndarray]:
        """One bit string per row of ``t``."""

    @abstractmethod
    def decode(self, rows: list[np.ndarray], shape: tuple[int, ...]) -> Tensor:
        """Rebuild a tensor of ``shape`` from the bit strings ``encode`` wrote."""

    @property
    def param(self) -> int:
        """One byte that, with ``tag``, identifies the codec on the wire."""
        return 0

    @property
    def width(self) -> int | None:
        """Bits per value of a fixed-width code (``None`` for a variable-length one)."""
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and other.tag == self.tag and other.param == self.param

    def __hash__(self) -> int:
        return hash((self.tag, self.param))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param})"


def _fixed_bits(t: Tensor, width: int) -> Tensor:
    rows = as_rows(t)
    return torch.full((rows.shape[0],), rows.shape[1] * width, dtype=torch.long)


def _check_lengths(rows: list[np.ndarray], per_row: int) -> None:
    for r in rows:
        if r.size != per_row:
            raise ValueError(f"field row has {r.size} bits, expected {per_row}")


class Float(Codec):
    """IEEE floats at the precision of ``dtype`` (values, norms, scales)."""

    tag = 1

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        if dtype not in FLOAT_BITS:
            raise ValueError(f"wire dtype must be one of {list(FLOAT_BITS)}, got {dtype}")
        self.dtype = dtype

    @property
    def param(self) -> int:
        return DTYPE_CODES[self.dtype]

    @property
    def width(self) -> int:
        return FLOAT_BITS[self.dtype]

    def bits(self, t: Tensor) -> Tensor:
        return _fixed_bits(t, self.width)

    def encode(self, t: Tensor) -> list[np.ndarray]:
        rows = as_rows(t.detach().to("cpu", self.dtype)).contiguous()
        raw = rows.view(torch.uint8).numpy() if rows.numel() else np.zeros((rows.shape[0], 0), np.uint8)
        return list(np.unpackbits(raw, axis=1, bitorder="little").astype(bool))

    def decode(self, rows: list[np.ndarray], shape: tuple[int, ...]) -> Tensor:
        m = shape[-1] if shape else 1
        _check_lengths(rows, m * self.width)
        if m == 0:
            return torch.zeros(shape, dtype=self.dtype)
        raw = np.packbits(np.stack(rows).reshape(len(rows), -1), axis=1, bitorder="little")
        return torch.from_numpy(raw.copy()).view(self.dtype).reshape(shape)


class UInt(Codec):
    """Unsigned integers in ``[0, 2**b)`` packed at ``b`` bits each (``1 <= b <= 63``)."""

    tag = 2

    def __init__(self, b: int) -> None:
        if not 1 <= b <= 63:
            raise ValueError(f"UInt width must be in [1, 63], got {b}")
        self.b = b

    @property
    def param(self) -> int:
        return self.b

    @property
    def width(self) -> int:
        return self.b

    def bits(self, t: Tensor) -> Tensor:
        return _fixed_bits(t, self.b)

    def encode(self, t: Tensor) -> list[np.ndarray]:
        rows = as_rows(t.detach().to("cpu", torch.int64)).numpy()
        if rows.size and (rows.min() < 0 or int(rows.max()) >> self.b):
            raise ValueError(f"UInt({self.b}) field holds a value outside [0, 2**{self.b})")
        v = rows.astype(np.uint64)
        shifts = np.arange(self.b, dtype=np.uint64)
        bits = ((v[:, :, None] >> shifts) & np.uint64(1)).astype(bool)
        return list(bits.reshape(rows.shape[0], -1))

    def decode(self, rows: list[np.ndarray], shape: tuple[int, ...]) -> Tensor:
        m = shape[-1] if shape else 1
        _check_lengths(rows, m * self.b)
        if m == 0:
            return torch.zeros(shape, dtype=torch.int64)
        bits = np.stack(rows).reshape(len(rows), m, self.b)
        v = np.zeros((len(rows), m), dtype=np.uint64)
        for j in range(self.b):  # one pass per bit of the width: memory O(values), not O(bits * 8)
            v |= bits[:, :, j].astype(np.uint64) << np.uint64(j)
        return torch.from_numpy(v.astype(np.int64)).reshape(shape)


def _bitlen(v: np.ndarray) -> np.ndarray:
    """Binary length of non-negative uint64 values, exact (no float rounding)."""
    out = np.zeros(v.shape, dtype=np.int64)
    w = v.copy()
    while np.any(w):
        out += w > 0
        w = w >> np.uint64(1)
    return out


_CHUNK = 1 << 16
"""Bits of an Elias row decoded per step: memory is O(_CHUNK), the time per bit a constant."""


def _gamma_ends(w: np.ndarray, widths: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """For every start ``p`` in ``[0, len(w) + 1]``: ``first[p]``, the first 1 at or after ``p``, and for
    each cap in ``widths`` ``end[p]``, where the Elias-gamma code starting at ``p`` ends (exclusive), or
    ``len(w) + 1`` where no legal code fits. A code of ``z`` zeros, a 1 and ``z`` bits holds a value of
    ``z + 1`` bits, so codes with ``z >= width`` (wider than the largest legal value) are refused before
    they are read."""
    size = w.size
    pos = np.arange(size + 2)
    first = np.full(size + 2, size)
    first[:size] = np.minimum.accumulate(np.where(w, pos[:size], size)[::-1])[::-1]
    zeros = first - pos
    end = first + zeros + 1
    bad = (first >= size) | (end > size)
    ends = []
    for width in widths:
        capped = end.copy()
        capped[bad | (zeros >= width)] = size + 1
        ends.append(capped)
    return first, ends


def _gamma_values(w: np.ndarray, first: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Values of the (already validated) gamma codes at ``starts``: bits ``q .. 2q - start``, MSB first,
    with ``q = first[start]``; codes of one bit (value 1, the common case) need no reading."""
    q = first[starts]
    value = np.ones(starts.size, dtype=np.int64)
    wide = np.flatnonzero(q > starts)
    zeros, q = q[wide] - starts[wide], q[wide]
    for j in range(1, int(zeros.max()) + 1 if wide.size else 0):
        keep = zeros >= j
        wide, zeros, q = wide[keep], zeros[keep], q[keep]
        value[wide] = (value[wide] << 1) | w[q + j]
    return value


def _orbit_doubling(step: np.ndarray, start: int, inside: int) -> tuple[np.ndarray, int]:
    """The positions ``start, T(start), T(T(start)), ...`` below ``inside`` and the first one at or above
    it, for the map ``T = step`` (``T(p) > p`` below ``inside``, ``T(p) = p`` above). Pointer doubling:
    after round ``j`` the list holds ``T^i(start)`` for ``i < 2^j`` and ``jump = T^(2^j)``, so
    ``O(log inside)`` rounds of array operations over ``len(step)`` entries."""
    pts = np.full(1, start, dtype=step.dtype)
    jump = step
    while True:
        new = jump[pts]
        below = new < inside
        if not below.all():
            return np.concatenate([pts, new[below]]), int(new[~below][0])
        pts = np.concatenate([pts, new])
        jump = jump[jump]


def _orbit(step: np.ndarray, inside: int, shrink: int = 4) -> tuple[np.ndarray, int]:
    """``_orbit_doubling(step, 0, inside)`` on fewer points. Walks from different starts merge, so the
    image ``S_k = T^k([0, inside))`` shrinks fast in the first rounds; the orbit from ``T^k(0)`` stays
    in ``S_k`` (closed under ``T``), so after walking ``k`` steps from 0 the doubling runs on ``S_k``
    and the exits it reaches, renumbered in order."""
    walk = [0]
    image = np.arange(inside, dtype=step.dtype)
    mark = np.zeros(step.size, dtype=bool)
    for _ in range(shrink):
        nxt = int(step[walk[-1]])
        if nxt >= inside:
            return np.array(walk, dtype=step.dtype), nxt
        walk.append(nxt)
        mark[step[image]] = True
        image = np.flatnonzero(mark[:inside])
        mark[:] = False
    mark[image] = True
    mark[step[image]] = True
    points = np.flatnonzero(mark)  # S_k and the exits it reaches, in order; closed under T
    rank = np.empty(step.size, dtype=step.dtype)
    rank[points] = np.arange(points.size)
    below = int(np.searchsorted(points, inside))
    rest, exit_ = _orbit_doubling(rank[step[points]], int(rank[walk[-1]]), below)
    return np.concatenate([np.array(walk[:-1], dtype=step.dtype), points[rest]]), int(points[exit_])


def _decode_elias_row(bits: np.ndarray, d: int, level_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """1-based positions and signed levels of one row's (gap, sign, level) stream, in chunks of
    ``_CHUNK`` bits. In a chunk, ``T(p)`` = where a triplet starting at bit ``p`` ends is computed for
    every ``p`` at once; the triplet starts are the orbit of the chunk's first start under ``T``.
    Gaps are at most ``d`` (``bit_length(d)`` bits) and levels below ``2**level_bits``."""
    total = bits.size
    gap_bits = d.bit_length()
    longest = (2 * gap_bits - 1) + 1 + (2 * level_bits - 1)
    gaps, levels = [], []
    p0 = 0
    while p0 < total:
        inside = min(total, p0 + _CHUNK) - p0
        w = bits[p0 : min(total, p0 + inside + longest)]
        size = w.size
        first, (gap_end, level_end) = _gamma_ends(w, (gap_bits, level_bits))  # gap_end: the sign bit
        step = np.arange(size + 2)
        step[:inside] = level_end[np.minimum(gap_end[:inside] + 1, size + 1)]
        starts, exit_ = _orbit(step, inside)
        if exit_ > size:
            raise ValueError("Elias-coded field is truncated or malformed (a code overruns or is too wide)")
        sign_at = gap_end[starts]
        gaps.append(_gamma_values(w, first, starts))
        magnitude = _gamma_values(w, first, sign_at + 1)
        levels.append(np.where(w[sign_at], -magnitude, magnitude))
        p0 += exit_
    if not gaps:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pos = np.cumsum(np.concatenate(gaps))
    if pos[-1] > d:
        raise ValueError(f"Elias-coded position {int(pos[-1])} is beyond the row length {d}")
    return pos, np.concatenate(levels)


class EliasSparse(Codec):
    """The QSGD gap/sign/level code of a signed integer row (see the module docstring).

    ``level_bits`` bounds the levels: ``|level| < 2**level_bits`` (QSGD with ``s`` levels uses
    ``s.bit_length()``); it is the codec's wire parameter, so the decoder refuses any level code wider
    than that, and any gap code wider than ``bit_length(d)``, before reading its value.
    """

    tag = 3

    def __init__(self, level_bits: int = 63) -> None:
        if isinstance(level_bits, bool) or not isinstance(level_bits, int) or not 1 <= level_bits <= 63:
            raise ValueError(f"EliasSparse level_bits must be an integer in [1, 63], got {level_bits!r}")
        self.level_bits = level_bits

    @property
    def param(self) -> int:
        return self.level_bits

    def bits(self, t: Tensor) -> Tensor:
        rows = as_rows(t)
        r, c = rows.nonzero(as_tuple=True)  # row-major order: positions ascend within each row
        pos = c + 1
        first = torch.ones_like(r, dtype=torch.bool)
        first[1:] = r[1:] != r[:-1]
        prev = torch.where(first, torch.zeros_like(pos), torch.roll(pos, 1))
        per_entry = gamma_length(pos - prev) + 1 + gamma_length(rows[r, c].abs().long())
        counts = torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)
        return counts.index_add_(0, r, per_entry).cpu()

    def encode(self, t: Tensor) -> list[np.ndarray]:
        rows = as_rows(t.detach().to("cpu", torch.int64)).numpy()
        if rows.size and int(np.abs(rows).max()) >> self.level_bits:
            raise ValueError(
                f"EliasSparse({self.level_bits}) field holds a level of {self.level_bits + 1}+ bits"
            )
        return [self._encode_row(r) for r in rows]

    @staticmethod
    def _encode_row(row: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(row)
        if idx.size == 0:
            return np.zeros(0, dtype=bool)
        gaps = np.diff(idx.astype(np.uint64) + np.uint64(1), prepend=np.uint64(0))
        levels = np.abs(row[idx]).astype(np.uint64)
        signs = (row[idx] < 0).astype(np.uint64)
        vals = np.stack([gaps, signs, levels], axis=1).reshape(-1)
        blen = np.stack([_bitlen(gaps), np.ones(idx.size, np.int64), _bitlen(levels)], axis=1).reshape(-1)
        plain = np.zeros(vals.shape, dtype=bool)
        plain[1::3] = True
        lens = np.where(plain, 1, 2 * blen - 1)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        first = starts + np.where(plain, 0, blen - 1)  # gamma: (B-1) zeros, then the B bits of v, MSB first
        out = np.zeros(int(lens.sum()), dtype=bool)
        for j in range(int(blen.max())):
            sel = j < blen
            bit = (vals[sel] >> (blen[sel] - 1 - j).astype(np.uint64)) & np.uint64(1)
            out[first[sel] + j] = bit.astype(bool)
        return out

    def decode(self, rows: list[np.ndarray], shape: tuple[int, ...]) -> Tensor:
        d = shape[-1] if shape else 1
        decoded = [_decode_elias_row(bits, d, self.level_bits) for bits in rows]  # all parse first
        out = np.zeros((len(rows), d), dtype=np.int64)
        for r, (pos, levels) in enumerate(decoded):
            out[r, pos - 1] = levels
        return torch.from_numpy(out).reshape(shape)


def omega_length(v: Tensor) -> Tensor:
    """Elias-omega code length of integers ``1 <= v < 2**63``: ``1 + sum_k bit_length(n_k)`` over the
    groups ``n_0 = v``, ``n_{k+1} = bit_length(n_k) - 1`` while ``n_k >= 2`` (at most 5 groups)."""
    n = v.long()
    length = torch.ones_like(n)
    while bool((n > 1).any()):
        more = n > 1
        b = torch.frexp(n.double()).exponent.long().clamp_(max=63)  # bit_length(n), or one more where
        b = b - (n < torch.bitwise_left_shift(torch.ones_like(b), b - 1)).long()  # rounding rose: undo
        length = length + torch.where(more, b, 0)
        n = torch.where(more, b - 1, n)
    return length


def _omega_groups(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The omega groups of each value ``>= 1`` in writing order, as ``[values, depth]`` arrays of
    group values and their bit lengths (right-aligned: unused leading slots have length 0)."""
    groups, lens = [], []
    n = v.astype(np.uint64)
    while np.any(n > 1):
        more = n > 1
        b = _bitlen(n)
        groups.append(np.where(more, n, 0).astype(np.uint64))
        lens.append(np.where(more, b, 0))
        n = np.where(more, (b - 1).astype(np.uint64), n)
    if not groups:
        return np.zeros((v.size, 0), np.uint64), np.zeros((v.size, 0), np.int64)
    return np.stack(groups[::-1], axis=1), np.stack(lens[::-1], axis=1)


def _write_fields(vals: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenate ``vals[i]`` written MSB first in ``lens[i]`` bits (a length of 0 writes nothing)."""
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    out = np.zeros(int(lens.sum()), dtype=bool)
    for j in range(int(lens.max()) if lens.size else 0):
        sel = j < lens
        bit = (vals[sel] >> (lens[sel] - 1 - j).astype(np.uint64)) & np.uint64(1)
        out[starts[sel] + j] = bit.astype(bool)
    return out


def _omega_table(w: np.ndarray, widths: tuple[int, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    """For every start ``p`` in ``[0, len(w) + 1]`` and each cap in ``widths``: where the Elias-omega
    code starting at ``p`` ends (exclusive), or ``len(w) + 1`` where no legal code fits (truncated, or a
    group of more than the cap, refused before it is read); and the code's value. All starts advance
    together, one group per array pass, under the widest cap; a group is ``n + 1`` bits with ``n`` the
    value so far, so widths grow strictly, the last group is the widest and at most ``max(widths)``
    passes run. A narrower cap keeps the codes whose last group fits it."""
    size, top = w.size, max(widths)
    wp = np.concatenate([w, np.zeros(top + 2, dtype=bool)])  # reads past the end are flagged below
    pos = np.arange(size + 2)
    value = np.ones(size + 2, dtype=np.int64)
    widest = np.zeros(size + 2, dtype=np.int64)
    end = np.full(size + 2, size + 1)
    live = np.flatnonzero(pos < size)
    while live.size:
        at = pos[live]
        stop = ~wp[at]
        end[live[stop]] = at[stop] + 1  # the terminating 0
        live, at = live[~stop], at[~stop]
        glen = value[live] + 1
        ok = (glen <= top) & (at + glen <= size)
        live, at, glen = live[ok], at[ok], glen[ok]
        got = np.zeros(live.size, dtype=np.int64)
        for j in range(int(glen.max()) if glen.size else 0):
            keep = j < glen
            got[keep] = (got[keep] << 1) | wp[at[keep] + j]
        value[live], widest[live] = got, glen
        pos[live] = at + glen
        live = live[pos[live] < size]  # a code whose groups reach the end has no terminating 0
    return [np.where(widest <= width, end, size + 1) for width in widths], value


def _decode_omega_row(bits: np.ndarray, d: int, level_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``_decode_elias_row`` for the omega-coded stream: same chunks, orbit and caps."""
    total = bits.size
    gap_bits = d.bit_length()
    longest = _omega_max_length(gap_bits) + 1 + _omega_max_length(level_bits)
    gaps, levels = [], []
    p0 = 0
    while p0 < total:
        inside = min(total, p0 + _CHUNK) - p0
        w = bits[p0 : min(total, p0 + inside + longest)]
        size = w.size
        (gap_end, level_end), val = _omega_table(w, (gap_bits, level_bits))
        step = np.arange(size + 2)
        step[:inside] = level_end[np.minimum(gap_end[:inside] + 1, size + 1)]
        starts, exit_ = _orbit(step, inside)
        if exit_ > size:
            raise ValueError("Elias-omega field is truncated or malformed (a code overruns or is too wide)")
        sign_at = gap_end[starts]
        gaps.append(val[starts])
        magnitude = val[sign_at + 1]
        levels.append(np.where(w[sign_at], -magnitude, magnitude))
        p0 += exit_
    if not gaps:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pos = np.cumsum(np.concatenate(gaps))
    if pos[-1] > d:
        raise ValueError(f"Elias-omega position {int(pos[-1])} is beyond the row length {d}")
    return pos, np.concatenate(levels)


def _omega_max_length(width: int) -> int:
    """Longest legal omega code when groups are capped at ``width`` bits: that of ``2**width - 1``."""
    n, length = (1 << width) - 1, 1
    while n > 1:
        length += n.bit_length()
        n = n.bit_length() - 1
    return length


class EliasOmegaSparse(EliasSparse):
    """QSGD's gap/sign/level stream with Elias-omega codes (see the module docstring); the same
    ``level_bits`` cap and wire parameter as ``EliasSparse``, another tag."""

    tag = 4

    def bits(self, t: Tensor) -> Tensor:
        rows = as_rows(t)
        r, c = rows.nonzero(as_tuple=True)
        pos = c + 1
        first = torch.ones_like(r, dtype=torch.bool)
        first[1:] = r[1:] != r[:-1]
        prev = torch.where(first, torch.zeros_like(pos), torch.roll(pos, 1))
        per_entry = omega_length(pos - prev) + 1 + omega_length(rows[r, c].abs().long())
        counts = torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)
        return counts.index_add_(0, r, per_entry).cpu()

    @staticmethod
    def _encode_row(row: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(row)
        if idx.size == 0:
            return np.zeros(0, dtype=bool)
        gaps = np.diff(idx.astype(np.uint64) + np.uint64(1), prepend=np.uint64(0))
        gv, gl = _omega_groups(gaps)
        lv, ll = _omega_groups(np.abs(row[idx]).astype(np.uint64))
        one = np.ones((idx.size, 1), np.int64)
        zero = np.zeros((idx.size, 1), np.uint64)
        signs = (row[idx] < 0).astype(np.uint64)[:, None]
        vals = np.concatenate([gv, zero, signs, lv, zero], axis=1).reshape(-1)
        lens = np.concatenate([gl, one, one, ll, one], axis=1).reshape(-1)
        return _write_fields(vals, lens)

    def decode(self, rows: list[np.ndarray], shape: tuple[int, ...]) -> Tensor:
        d = shape[-1] if shape else 1
        decoded = [_decode_omega_row(bits, d, self.level_bits) for bits in rows]  # all parse first
        out = np.zeros((len(rows), d), dtype=np.int64)
        for r, (pos, levels) in enumerate(decoded):
            out[r, pos - 1] = levels
        return torch.from_numpy(out).reshape(shape)


def codec_from_wire(tag: int, param: int) -> Codec:
    """Rebuild a codec from its (tag, param) bytes; unknown values raise ``ValueError``."""
    if tag == Float.tag:
        if param not in CODE_DTYPES:
            raise ValueError(f"unknown float dtype code {param}")
        return Float(CODE_DTYPES[param])
    if tag == UInt.tag:
        if not 1 <= param <= 63:
            raise ValueError(f"UInt width {param} is out of range")
        return UInt(param)
    if tag == EliasSparse.tag:
        if not 1 <= param <= 63:
            raise ValueError(f"EliasSparse level width {param} is out of range")
        return EliasSparse(param)
    if tag == EliasOmegaSparse.tag:
        if not 1 <= param <= 63:
            raise ValueError(f"EliasOmegaSparse level width {param} is out of range")
        return EliasOmegaSparse(param)
    raise ValueError(f"unknown codec tag {tag}")
