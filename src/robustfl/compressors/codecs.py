"""How one payload field is written on the wire, and exactly how many bits that takes.

A codec maps each row of a tensor (its last dimension) to a bit string and back. ``bits`` is the exact
length of those bit strings, so a message's bit count is the sum of its fields' codec lengths; the
frame header of ``wire.py`` (shapes, lengths, checksum) is extra.

- ``Float(dtype)``: IEEE values at their wire precision (16, 32 or 64 bits each).
- ``UInt(b)``: non-negative integers packed at ``b`` bits each (signs, quantisation levels, indices).
- ``EliasSparse()``: the QSGD code (Alistarh et al., 2017, "efficient coding"): for each non-zero
  entry of a signed integer row, in order, the Elias-gamma code of the gap to the previous non-zero
  position (positions are 1-based, so a gap is >= 1), one sign bit, and the Elias-gamma code of
  ``|level| >= 1``. Zeros cost nothing. We use Elias *gamma* (``2 floor(log2 v) + 1`` bits for
  ``v >= 1``) rather than the recursive omega code: for the small gaps and levels QSGD produces the
  two differ by a few bits, and gamma's length has a closed form that vectorises over a batch.
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
        self.width = FLOAT_BITS[dtype]

    @property
    def param(self) -> int:
        return DTYPE_CODES[self.dtype]

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
        weights = np.uint64(1) << np.arange(self.b, dtype=np.uint64)
        bits = np.stack(rows).reshape(len(rows), m, self.b).astype(np.uint64)
        v = (bits * weights).sum(axis=2, dtype=np.uint64)
        return torch.from_numpy(v.astype(np.int64)).reshape(shape)


def _bitlen(v: np.ndarray) -> np.ndarray:
    """Binary length of non-negative uint64 values, exact (no float rounding)."""
    out = np.zeros(v.shape, dtype=np.int64)
    w = v.copy()
    while np.any(w):
        out += w > 0
        w = w >> np.uint64(1)
    return out


class EliasSparse(Codec):
    """The QSGD gap/sign/level code of a signed integer row (see the module docstring)."""

    tag = 3

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
        return [self._encode_row(r) for r in as_rows(t.detach().to("cpu", torch.int64)).numpy()]

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
        out = np.zeros((len(rows), d), dtype=np.int64)
        for r, bits in enumerate(rows):
            self._decode_row(bits, out[r])
        return torch.from_numpy(out).reshape(shape)

    @staticmethod
    def _decode_row(bits: np.ndarray, out: np.ndarray) -> None:
        """Vectorised decode of one row's (gap, sign, level) stream.

        For every bit position ``p``, ``end[p]`` is where a gamma code starting at ``p`` would end;
        a triplet starting at ``p`` ends at ``T[p] = end[end[p] + 1]``. The triplet starts are the
        orbit of 0 under ``T``, found by pointer doubling in ``O(N log N)`` array operations.
        Positions ``N`` (exact end of the stream) and ``N + 1`` (overrun) are sentinels.
        """
        total, d = bits.size, out.size
        if total == 0:
            return
        bad = ValueError("Elias-coded field is truncated or malformed")
        ones = np.flatnonzero(bits)
        if ones.size == 0:
            raise bad
        p = np.arange(total, dtype=np.int64)
        k = np.searchsorted(ones, p)
        q = np.where(k < ones.size, ones[np.minimum(k, ones.size - 1)], total + 1)  # first 1 at or after p
        end = np.full(total + 2, total + 1, dtype=np.int64)
        end[:total] = np.where(q <= total, 2 * q - p + 1, total + 1)
        end[end > total] = total + 1
        after_gap = end[:total]
        sign_ok = after_gap < total
        step = np.full(total + 2, total + 1, dtype=np.int64)
        step[:total] = np.where(sign_ok, end[np.minimum(after_gap + 1, total + 1)], total + 1)
        step[total] = total
        on_orbit = np.zeros(total + 2, dtype=bool)  # after round j: T^i(0) for all i < 2^(j+1)
        on_orbit[0] = True
        jump = step
        for _ in range(int(np.ceil(np.log2(total + 1))) + 1):
            on_orbit[jump[np.flatnonzero(on_orbit)]] = True
            jump = jump[jump]
        if on_orbit[total + 1] or not on_orbit[total]:  # overran the stream, or never reached its end
            raise bad
        starts = np.flatnonzero(on_orbit[:total])

        def gamma_values(at: np.ndarray) -> np.ndarray:
            first = q[at]
            width = first - at  # the code is `width` zeros, then width + 1 value bits
            value = np.zeros(at.size, dtype=np.int64)
            for j in range(int(width.max()) + 1 if at.size else 0):
                sel = j <= width
                value[sel] = (value[sel] << 1) | bits[first[sel] + j]
            return value

        gaps = gamma_values(starts)
        sign_at = end[starts]
        levels = gamma_values(sign_at + 1)
        pos = np.cumsum(gaps)
        if pos.size and pos[-1] > d:
            raise ValueError(f"Elias-coded position {int(pos[-1])} is beyond the row length {d}")
        out[pos - 1] = np.where(bits[sign_at], -levels, levels)


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
        return EliasSparse()
    raise ValueError(f"unknown codec tag {tag}")
