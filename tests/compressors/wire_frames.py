"""Hand-made wire frames (the layout of ``robustfl.compressors.wire``) for the hostile-input tests."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

from robustfl.compressors.wire import MAGIC, VERSION


def gamma(v: int) -> list[int]:
    """Elias-gamma bits of ``v >= 1``: ``bit_length - 1`` zeros, then ``v`` in binary, MSB first."""
    b = v.bit_length()
    return [0] * (b - 1) + [int(c) for c in format(v, "b")]


def triplet(gap: int, level: int) -> list[int]:
    """One QSGD Elias entry: gamma(gap), sign bit, gamma(|level|)."""
    return [*gamma(gap), int(level < 0), *gamma(abs(level))]


def field(
    name: str, tag: int, param: int, kind: int, shapes: Sequence[Sequence[int]], lengths: Sequence[int]
) -> bytes:
    """A field header: name, codec, kind, every shape, then every row's bit length."""
    out = struct.pack("<B", len(name)) + name.encode() + struct.pack("<BBB", tag, param, kind)
    for s in shapes:
        out += struct.pack("<B", len(s)) + struct.pack(f"<{len(s)}I", *s)
    return out + struct.pack(f"<{len(lengths)}I", *lengths)


def frame(
    fields: Sequence[bytes],
    bits: Sequence[int] | np.ndarray,
    *,
    n: int = 1,
    d: int = 8,
    compressor: str = "qsgd",
    params: str = "",
    dtype: int = 3,
    flags: int = 0,
    extra: bytes = b"",
) -> bytes:
    """A complete frame with a valid checksum (``extra`` bytes are appended to the payload)."""
    body = MAGIC + struct.pack("<BBB", VERSION, flags, dtype)
    body += struct.pack("<B", len(compressor)) + compressor.encode()
    body += struct.pack("<H", len(params)) + params.encode()
    body += struct.pack("<IIB", n, d, len(fields)) + b"".join(fields)
    body += np.packbits(np.asarray(bits, dtype=bool), bitorder="little").tobytes() + extra
    return body + struct.pack("<I", zlib.crc32(body))


def with_crc(body_and_crc: bytes | bytearray) -> bytes:
    """Recompute the checksum of an edited frame (so the edit reaches the parser, not the CRC check)."""
    body = bytes(body_and_crc[:-4])
    return body + struct.pack("<I", zlib.crc32(body))
