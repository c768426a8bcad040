"""The bytes form of a ``Message`` (no pickle), for the distributed runtime.

Layout (little-endian)::

    magic b"RFLC" | version u8 | flags u8 (bit 0: 1-D input) | dtype u8 | name: u8 length + utf-8
    n u32 | d u32 | field count u8
    per field: name (u8 length + utf-8) | codec tag u8 | codec param u8 | kind u8 (0 per-row tensor,
               1 per-row list, 2 shared) | shapes (u8 ndim + u32 dims; a list field has n of them)
               | u32 bit length of each of its rows (rows = the last dimension)
    payload: every row's bit string, fields in order, concatenated and packed into bytes (zero padded)
    crc32 u32 of everything before it

The payload is exactly ``msg.bits`` bits; the rest is the header, a few bytes per field plus four per
row. Anything that does not parse (bad magic, unknown codec, truncated data, length mismatch, bad
checksum) raises ``ValueError``.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
from torch import Tensor

from robustfl.compressors.base import Field, Message
from robustfl.compressors.codecs import CODE_DTYPES, DTYPE_CODES, codec_from_wire

MAGIC = b"RFLC"
VERSION = 1
PER_ROW, PER_ROW_LIST, SHARED = 0, 1, 2


def _name(s: str) -> bytes:
    raw = s.encode()
    if len(raw) > 255:
        raise ValueError(f"name {s!r} is too long for the wire format")
    return struct.pack("<B", len(raw)) + raw


def _shape(t: Tensor) -> bytes:
    return struct.pack("<B", t.dim()) + struct.pack(f"<{t.dim()}I", *t.shape)


def encode(msg: Message) -> bytes:
    """Serialise ``msg``; see the module docstring for the layout."""
    head = [
        MAGIC,
        struct.pack("<BBB", VERSION, int(msg.squeeze), DTYPE_CODES[msg.dtype]),
        _name(msg.compressor),
    ]
    head.append(struct.pack("<IIB", msg.n, msg.d, len(msg.fields)))
    streams: list[np.ndarray] = []
    for key, f in msg.fields.items():
        tensors = f.data if isinstance(f.data, list) else [f.data]
        kind = PER_ROW_LIST if isinstance(f.data, list) else (PER_ROW if f.per_row else SHARED)
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
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("compressed message is truncated (header ends early)")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def name(self) -> str:
        (length,) = self.take("<B")
        if self.pos + length > len(self.data):
            raise ValueError("compressed message is truncated (header ends early)")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ValueError("compressed message has a malformed name in its header") from None

    def shape(self, limit: int) -> tuple[int, ...]:
        (ndim,) = self.take("<B")
        if ndim > 4:
            raise ValueError(f"compressed message field has {ndim} dimensions (at most 4)")
        dims = self.take(f"<{ndim}I")
        if math.prod(dims) > limit:
            raise ValueError(f"compressed message field shape {dims} is larger than the message allows")
        return dims


def decode(data: bytes) -> Message:
    """Parse bytes written by ``encode``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"from_bytes() needs bytes, got {type(data).__name__}")
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
    n, d, count = r.take("<IIB")
    if n == 0 or d == 0:
        raise ValueError("compressed message header is malformed (empty shape)")
    limit = 2 * n * d + 4096
    specs = []
    for _ in range(count):
        key = r.name()
        tag, param, kind = r.take("<BBB")
        codec = codec_from_wire(tag, param)
        if kind not in (PER_ROW, PER_ROW_LIST, SHARED):
            raise ValueError(f"compressed message field {key!r} has unknown kind {kind}")
        shapes = [r.shape(limit) for _ in range(n if kind == PER_ROW_LIST else 1)]
        if kind == PER_ROW and (len(shapes[0]) == 0 or shapes[0][0] != n):
            raise ValueError(f"compressed message field {key!r} has shape {shapes[0]}, expected {n} rows")
        lengths = []
        for s in shapes:
            rows = 1 if len(s) == 0 else math.prod(s[:-1])
            lengths.append(r.take(f"<{rows}I"))
        specs.append((key, codec, kind, shapes, lengths))
    payload = np.unpackbits(np.frombuffer(body, dtype=np.uint8, offset=r.pos), bitorder="little").astype(bool)
    needed = sum(sum(sum(ls) for ls in lengths) for *_, lengths in specs)
    if needed > payload.size or payload.size - needed >= 8:
        raise ValueError(f"compressed message payload has {payload.size} bits, header says {needed}")
    fields: dict[str, Field] = {}
    cursor = 0
    for key, codec, kind, shapes, lengths in specs:
        tensors = []
        for s, ls in zip(shapes, lengths, strict=True):
            chunks: list[np.ndarray] = []
            for length in ls:
                chunks.append(payload[cursor : cursor + length])
                cursor += length
            tensors.append(codec.decode(chunks, tuple(s)))
        data_: Tensor | list[Tensor] = tensors if kind == PER_ROW_LIST else tensors[0]
        fields[key] = Field(data_, codec, per_row=kind != SHARED)
    return Message(compressor, n, d, CODE_DTYPES[dtype_code], fields, squeeze=bool(flags & 1))
