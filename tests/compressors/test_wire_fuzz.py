"""Fuzz: mutated messages of every compressor (checksum recomputed, so the parser sees the edit) only
ever raise ``ValueError``, or decode to the shape the receiver expects.

``ROBUSTFL_FUZZ_EXAMPLES=20000 pytest tests/compressors/test_wire_fuzz.py`` runs a longer search
(docs/RESULTS.md, "Reliability"); the suite runs a few hundred cases in a few seconds.
"""

from __future__ import annotations

import os
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_frames import with_crc

from robustfl import compressors as C
from robustfl.compressors.base import Message
from robustfl.compressors.wire import Expect

D = 24
SHAPES = [(4, 5), (4,)]
EXAMPLES = int(os.environ.get("ROBUSTFL_FUZZ_EXAMPLES", "300"))


def _pool() -> list[tuple[C.Compressor, bytes]]:
    gen = torch.Generator().manual_seed(0)
    compressors = [
        C.Identity(),
        C.TopK(k=5),
        C.RandK(k=4),
        C.RandK(k=4, shared_seed=False),
        C.RandL(l=6),
        C.RandL(l=6, sign=True),
        C.BlockSampling(k=5),
        C.Sign(),
        C.QSGD(s=4),
        C.QSGD(s=300),
        C.QSGD(s=8, coding="fixed"),
        C.QSGD(s=4, coding="elias-omega"),
        C.QSGD(s=300, coding="elias-omega"),
        C.TernGrad(),
        C.ATOMO(budget=4.0),
        C.ATOMO(budget=2.0, atoms="svd", shapes=SHAPES),
        C.PowerSGD(rank=1, shapes=SHAPES),
        C.Compose(C.TopK(k=6), C.QSGD(s=4)),
        C.get("signum", beta=0.5),
        C.get("layerwise", inner="qsgd", shapes=SHAPES),
        C.get("qsgd-layers", bits=2, shapes=SHAPES, coding="elias-omega"),
    ]
    out = []
    for c in compressors:
        x = torch.randn(2, D, generator=gen)
        msg = c.compress(x, gen)
        out += [(c, msg.to_bytes()), (c, msg.row(1).to_bytes())]
    return out


POOL = _pool()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[C.Compressor, bytes]:
    c, data = POOL[draw(st.integers(0, len(POOL) - 1))]
    body = bytearray(data[:-4])
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "u32", "splice"]))
    at = draw(st.integers(4, len(body) - 1))  # past the magic bytes, which only one check reads
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            body[draw(st.integers(4, len(body) - 1))] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        del body[at:]
    elif kind == "insert":
        body[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "u32":
        value = draw(st.sampled_from([0, 1, 2, 255, 2**16, 2**31, 2**32 - 1]))
        body[at : at + 4] = struct.pack("<I", value)
    else:
        _, other = POOL[draw(st.integers(0, len(POOL) - 1))]
        body[at:] = other[at:-4]
    return c, with_crc(bytes(body) + b"\0\0\0\0")


@settings(max_examples=EXAMPLES, deadline=None)
@given(mutated())
def test_mutated_messages_raise_value_error_or_decode_to_the_expected_shape(
    case: tuple[C.Compressor, bytes],
) -> None:
    c, data = case
    try:
        msg = Message.from_bytes(data, Expect(d=D, max_values=4 * D))
        out = c.decompress(msg)
    except ValueError:
        return
    assert out.shape in ((msg.n, D), (D,))


@pytest.mark.parametrize("size", [0, 7, 40, 300])
def test_random_bytes_after_a_valid_magic_raise_value_error(size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    for _ in range(50):
        junk = bytes(torch.randint(0, 256, (size,), generator=gen, dtype=torch.uint8).tolist())
        with pytest.raises(ValueError):
            Message.from_bytes(with_crc(b"RFLC\x02" + junk + b"\0\0\0\0"))
