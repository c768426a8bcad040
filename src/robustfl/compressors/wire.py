"""The bytes form of a ``Message`` (no pickle), for the distributed runtime and other receivers of
bytes from senders that may be Byzantine.

Layout (little-endian)::

    magic b"RFLC" | version u8 | flags u8 (bit 0: 1-D input; other bits 0) | dtype u8
    compressor name: u8 length + utf-8 | compressor parameters: u16 length + utf-8 (canonical text)
    n u32 | d u32 | field count u8
    per field: name (u8 length + utf-8) | codec tag u8 | codec param u8 | kind u8 (0 per-row tensor,
               1 per-row list of 1-D tensors, 2 shared) | shapes (u8 ndim + u32 dims; a list field
               has n of them) | u32 bit length of each of its rows (rows = the last dimension)
    payload: every row's bit string, fields in order, concatenated and packed into bytes (zero padded)
    crc32 u32 of everything before it

The payload is exactly ``msg.bits`` bits; the rest is the header, a few bytes per field plus four per
row.

Decoding is defensive: the receiver states what it accepts (``Expect``: the model's ``d``, the number
of senders per message, a size cap) and every check that needs only the header runs before anything is
allocated: the size cap, the checksum, ``n`` and ``d`` against the expectation, each field's shape
against ``n d``, each fixed-width row's bit length against its shape, and the total against the
payload. Parsing is canonical: unknown flags, duplicate field names, non-zero padding bits and a
payload of the wrong length are refused, so one message has one byte form. Every failure is a
``ValueError``.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from robustfl.compressors.base import Field, Message
from robustfl.compressors.codecs import CODE_DTYPES, DTYPE_CODES, Codec, codec_from_wire

MAGIC = b"RFLC"
VERSION = 2
PER_ROW, PER_ROW_LIST, SHARED = 0, 1, 2
MAX_NDIM = 4
DEFAULT_MAX_BYTES = 64 * 2**20
"""Largest message accepted when the receiver states no cap (64 MiB)."""
DEFAULT_MAX_VALUES = 2**24
"""Largest ``n d`` accepted when the receiver does not state both ``d`` and ``senders``."""


def _check_count(name: str, value: object, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"Expect({name}=...) must be an integer in [1, {maximum}], got {value!r}")
    return value


@dataclass(frozen=True)
class Expect:
    """What a receiver accepts from ``Message.from_bytes``; anything else is refused before allocation.

    - ``d``: the model's dimension; a message over another ``d`` is refused.
    - ``senders``: the number of rows (senders) a message must hold (1 for one sender's ``row(i)``).
    - ``max_bytes``: the largest message accepted (default 64 MiB).
    - ``max_values``: the largest ``n d`` accepted unless both ``d`` and ``senders`` are stated (then
      the receiver has said exactly what it will allocate). Default ``2**24``; with ``d`` stated, one
      row of that ``d`` is always allowed.

    ``Expect()`` (the default of ``from_bytes``) accepts any ``n`` and ``d`` within these caps.
    """

    d: int | None = None
    senders: int | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_values: int = DEFAULT_MAX_VALUES

    def __post_init__(self) -> None:
        _check_count("d", self.d, 2**32 - 1)
        _check_count("senders", self.senders, 2**32 - 1)
        _check_count("max_bytes", self.max_bytes, 2**62)
        _check_count("max_values", self.max_values, 2**62)

    def check_shape(self, n: int, d: int) -> None:
        """Refuse a header's ``n`` and ``d`` that this receiver did not ask for."""
        if self.d is not None and d != self.d:
            raise ValueError(f"compressed message is over d={d}, but this receiver expects d={self.d}")
        if self.senders is not None and n != self.senders:
            raise ValueError(
                f"compressed message holds {n} senders' rows, but this receiver expects {self.senders}"
            )
        if self.d is not None and self.senders is not None:
            return
        limit = max(self.max_values, self.d or 0)
        if n * d > limit:
            raise ValueError(
                f"compressed message claims n*d = {n}*{d} values, more than this receiver accepts "
                f"({limit}); state the model's d and the senders with Expect(d=..., senders=...)"
            )


def _name(s: str, length_format: str = "<B") -> bytes:
    raw = s.encode()
    if len(raw) >= 1 << (8 * struct.calcsize(length_format)):
        raise ValueError(f"name {s[:40]!r}... is too long for the wire format")
    return struct.pack(length_format, len(raw)) + raw


def _shape(t: Tensor) -> bytes:
    if t.dim() > MAX_NDIM or any(s >= 2**32 for s in t.shape):
        raise ValueError(f"field shape {tuple(t.shape)} does not fit the wire format")
    return struct.pack("<B", t.dim()) + struct.pack(f"<{t.dim()}I", *t.shape)


def encode(msg: Message) -> bytes:
    """Serialise ``msg``; see the module docstring for the layout."""
    if msg.params is None:
        raise ValueError("message has no compressor parameters; build messages with Compressor.compress")
    if not (1 <= msg.n < 2**32 and 1 <= msg.d < 2**32) or len(msg.fields) > 255:
        raise ValueError(f"message shape n={msg.n}, d={msg.d} does not fit the wire format")
    head = [
        MAGIC,
        struct.pack("<BBB", VERSION, int(msg.squeeze), DTYPE_CODES[msg.dtype]),
        _name(msg.compressor),
        _name(msg.params, "<H"),
        struct.pack("<IIB", msg.n, msg.d, len(msg.fields)),
    ]
    streams: list[np.ndarray] = []
    for key, f in msg.fields.items():
        tensors = f.data if isinstance(f.data, list) else [f.data]
        kind = PER_ROW_LIST if isinstance(f.data, list) else (PER_ROW if f.per_row else SHARED)
        if kind == PER_ROW_LIST and any(t.dim() != 1 for t in tensors):
            raise ValueError(f"list field {key!r} must hold one 1-D tensor per row")
        head += [_name(key), struct.pack("<BBB", f.codec.tag, f.codec.param, kind)]
        head += [_shape(t) for t in tensors]
        for t in tensors:
            rows = f.codec.encode(t)
            head.append(struct.pack(f"<{len(rows)}I", *(r.size for r in rows)))
            streams += rows
    bits = np.concatenate(streams) if streams else np.zeros(0, dtype=bool)
    body = b"".join(head) + np.packbits(bits, bitorder="little").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    """Reads the header; every read checks the bytes left first (no ``struct.error`` escapes)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if size > self.left():
            raise ValueError("compressed message is truncated (header ends early)")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def u32s(self, count: int) -> np.ndarray:
        if 4 * count > self.left():
            raise ValueError("compressed message is truncated (header ends early)")
        out = np.frombuffer(self.data, dtype="<u4", count=count, offset=self.pos).astype(np.int64)
        self.pos += 4 * count
        return out

    def name(self, length_format: str = "<B") -> str:
        (length,) = self.take(length_format)
        if length > self.left():
            raise ValueError("compressed message is truncated (header ends early)")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ValueError("compressed message has a malformed name in its header") from None

    def shape(self, limit: int) -> tuple[int, ...]:
        (ndim,) = self.take("<B")
        if ndim > MAX_NDIM:
            raise ValueError(f"compressed message field has {ndim} dimensions (at most {MAX_NDIM})")
        dims = self.take(f"<{ndim}I")
        if math.prod(dims) > limit:
            raise ValueError(f"compressed message field shape {dims} is larger than the message allows")
        return dims


@dataclass(frozen=True)
class _Spec:
    key: str
    codec: Codec
    kind: int
    shapes: list[tuple[int, ...]]
    lengths: list[np.ndarray]


def _field_spec(r: _Reader, n: int, limit: int) -> _Spec:
    """One field's header, checked against ``n`` and the value ``limit`` before anything is allocated."""
    key = r.name()
    tag, param, kind = r.take("<BBB")
    codec = codec_from_wire(tag, param)
    if kind not in (PER_ROW, PER_ROW_LIST, SHARED):
        raise ValueError(f"compressed message field {key!r} has unknown kind {kind}")
    if kind == PER_ROW_LIST and n > r.left():
        raise ValueError("compressed message is truncated (header ends early)")
    shapes = [r.shape(limit) for _ in range(n if kind == PER_ROW_LIST else 1)]
    if kind == PER_ROW and (len(shapes[0]) == 0 or shapes[0][0] != n):
        raise ValueError(f"compressed message field {key!r} has shape {shapes[0]}, expected {n} rows")
    if kind == PER_ROW_LIST and any(len(s) != 1 for s in shapes):
        raise ValueError(f"compressed message list field {key!r} must hold 1-D rows")
    if sum(math.prod(s) for s in shapes) > limit:
        raise ValueError(f"compressed message field {key!r} is larger than the message allows")
    lengths = []
    for s in shapes:
        lengths.append(r.u32s(1 if len(s) == 0 else math.prod(s[:-1])))
        width = codec.width
        if width is not None and np.any(lengths[-1] != (s[-1] if s else 1) * width):
            raise ValueError(
                f"compressed message field {key!r} has a row of the wrong bit length for its shape"
            )
    return _Spec(key, codec, kind, shapes, lengths)


def decode(data: bytes, expect: Expect | None = None) -> Message:
    """Parse bytes written by ``encode``, accepting only what ``expect`` allows (default ``Expect()``)."""
    if expect is None:
        expect = Expect()
    if not isinstance(expect, Expect):
        raise ValueError(f"expect must be an Expect(d=..., senders=..., max_bytes=...), got {expect!r}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"from_bytes() needs bytes, got {type(data).__name__}")
    if len(data) > expect.max_bytes:
        raise ValueError(f"compressed message has {len(data)} bytes, more than max_bytes={expect.max_bytes}")
    data = bytes(data)
    if len(data) < 8 or data[:4] != MAGIC:
        raise ValueError("not a robustfl compressed message (bad magic bytes)")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise ValueError("compressed message is corrupt (checksum mismatch)")
    r = _Reader(body)
    r.pos = 4
    version, flags, dtype_code = r.take("<BBB")
    if version != VERSION:
        raise ValueError(f"compressed message has wire version {version}; this build reads {VERSION}")
    if dtype_code not in CODE_DTYPES or flags > 1:
        raise ValueError("compressed message header is malformed (dtype or flags)")
    compressor = r.name()
    params = r.name("<H")
    n, d, count = r.take("<IIB")
    if n == 0 or d == 0:
        raise ValueError("compressed message header is malformed (empty shape)")
    if flags & 1 and n != 1:
        raise ValueError(f"compressed message is flagged 1-D but holds {n} rows")
    expect.check_shape(n, d)
    limit = 2 * n * d + 64
    specs: list[_Spec] = []
    for _ in range(count):
        spec = _field_spec(r, n, limit)
        if any(s.key == spec.key for s in specs):
            raise ValueError(f"compressed message has field {spec.key!r} twice")
        specs.append(spec)
    needed = sum(int(ls.sum()) for s in specs for ls in s.lengths)
    if r.left() != (needed + 7) // 8:
        raise ValueError(f"compressed message payload has {r.left()} bytes, its header says {needed} bits")
    payload = np.unpackbits(np.frombuffer(body, dtype=np.uint8, offset=r.pos), bitorder="little").view(bool)
    if payload[needed:].any():
        raise ValueError("compressed message payload has non-zero padding bits")
    fields: dict[str, Field] = {}
    cursor = 0
    for spec in specs:
        tensors = []
        for s, ls in zip(spec.shapes, spec.lengths, strict=True):
            ends = cursor + np.cumsum(ls)
            chunks = [payload[a:b] for a, b in zip(np.concatenate([[cursor], ends[:-1]]), ends, strict=True)]
            cursor = int(ends[-1]) if ends.size else cursor
            tensors.append(spec.codec.decode(chunks, tuple(s)))
        data_: Tensor | list[Tensor] = tensors if spec.kind == PER_ROW_LIST else tensors[0]
        fields[spec.key] = Field(data_, spec.codec, per_row=spec.kind != SHARED)
    return Message(compressor, n, d, CODE_DTYPES[dtype_code], fields, squeeze=bool(flags & 1), params=params)
