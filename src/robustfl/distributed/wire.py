"""The runtime's own framing: a record is a small JSON header plus binary blobs, never a pickle.

::

    record = b"RFLR" | u32 little-endian header length | UTF-8 JSON header | blob 0 | blob 1 | ...

The JSON header lists the blobs' lengths under ``"blobs"``; everything else in it is plain numbers,
strings and lists (round, client ids, which blob holds which part). A blob is either a compressor's wire
message (``Message.to_bytes()``: its own header, bit-packed payload and CRC32) or the raw little-endian
bytes of a tensor (a broadcast, or an uncompressed upload row at its dtype's width). Decoding checks
every length and raises :class:`WireError` (a ``ValueError``) on anything malformed, so the server can
treat a bad record as a Byzantine message instead of crashing.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

MAGIC = b"RFLR"
_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}


class WireError(ValueError):
    """Bytes that do not parse as a record (truncated, wrong lengths, bad JSON)."""


def pack(meta: Mapping[str, Any], blobs: Sequence[bytes] = ()) -> bytes:
    """One record: ``meta`` (JSON-serialisable) plus ``blobs`` (their lengths are added as ``"blobs"``)."""
    header = json.dumps({**meta, "blobs": [len(b) for b in blobs]}, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *blobs])


def unpack(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Inverse of :func:`pack`; raises :class:`WireError` on malformed bytes."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise WireError("not a robustfl record (bad magic or too short)")
    (size,) = struct.unpack("<I", data[4:8])
    if 8 + size > len(data):
        raise WireError(f"record header of {size} bytes overruns the {len(data)}-byte record")
    try:
        meta = json.loads(data[8 : 8 + size].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"record header is not JSON: {err}") from None
    lengths = meta.get("blobs") if isinstance(meta, dict) else None
    if not isinstance(lengths, list) or not all(isinstance(n, int) and n >= 0 for n in lengths):
        raise WireError("record header has no valid blob lengths")
    offset, blobs = 8 + size, []
    for n in lengths:
        blobs.append(data[offset : offset + n])
        offset += n
    if offset != len(data):
        raise WireError(f"record is {len(data)} bytes but its header describes {offset}")
    return meta, blobs


def tensor_bytes(t: Tensor) -> bytes:
    """The raw bytes of ``t`` (CPU, contiguous, native little-endian)."""
    return t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes()


def tensor_from(blob: bytes, dtype: str, shape: Sequence[int]) -> Tensor:
    """A tensor of ``dtype`` and ``shape`` from ``blob``; a size that does not fit raises :class:`WireError`."""
    if dtype not in _DTYPES:
        raise WireError(f"unknown dtype {dtype!r}")
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError(f"bad shape {shape!r}")
    want = _DTYPES[dtype]
    count = 1
    for s in shape:
        count *= s
    size = torch.empty((), dtype=want).element_size()
    if len(blob) != count * size:
        raise WireError(f"{len(blob)} bytes cannot hold a {dtype} tensor of shape {list(shape)}")
    if count == 0:
        return torch.empty(tuple(shape), dtype=want)
    flat = torch.frombuffer(bytearray(blob), dtype=torch.uint8).view(want)
    return flat.reshape(tuple(shape)).clone()


def dtype_name(t: Tensor) -> str:
    """``"float32"`` for a float32 tensor (the names :func:`tensor_from` accepts)."""
    return str(t.dtype).removeprefix("torch.")


def encode_tensors(tensors: Mapping[str, Tensor]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Describe and serialise a dict of tensors (a broadcast): ``(specs, blobs)``, one of each per key."""
    specs = [{"key": k, "dtype": dtype_name(v), "shape": list(v.shape)} for k, v in tensors.items()]
    return specs, [tensor_bytes(v) for v in tensors.values()]


def decode_tensors(specs: Sequence[Mapping[str, Any]], blobs: Sequence[bytes]) -> dict[str, Tensor]:
    """Inverse of :func:`encode_tensors`."""
    if len(specs) != len(blobs):
        raise WireError(f"{len(specs)} tensor specs for {len(blobs)} blobs")
    return {s["key"]: tensor_from(b, s["dtype"], s["shape"]) for s, b in zip(specs, blobs, strict=True)}
