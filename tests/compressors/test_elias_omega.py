"""Elias-omega coding of QSGD's (gap, sign, level) stream: hand-written codes, exact lengths, round
trips, agreement with a plain sequential parser, width caps and QSGD / qsgd-layers selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from chunked_decode import decode_in_chunks, or_none
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl import compressors as C
from robustfl.compressors import codecs
from robustfl.compressors.base import Message
from robustfl.compressors.codecs import EliasOmegaSparse, omega_length
from robustfl.compressors.wire import Expect

# Elias (1975), Table of omega codes: n -> code
OMEGA = {
    1: "0",
    2: "100",
    3: "110",
    4: "101000",
    7: "101110",
    8: "1110000",
    15: "1111110",
    16: "10100100000",
    100: "1011011001000",
}


def omega(n: int) -> str:
    """The textbook recursion: prepend n in binary, continue with bit_length(n) - 1, stop at 1."""
    code = "0"
    while n > 1:
        code = format(n, "b") + code
        n = n.bit_length() - 1
    return code


def as_str(bits: np.ndarray) -> str:
    return "".join("1" if b else "0" for b in bits)


def test_the_recursion_matches_the_published_table() -> None:
    assert {n: omega(n) for n in OMEGA} == OMEGA


@pytest.mark.parametrize("n", sorted(OMEGA))
def test_a_single_entry_is_gap_sign_level_in_omega(n: int) -> None:
    row = torch.zeros(1, 128, dtype=torch.long)
    row[0, 2] = -n  # 1-based position 3: gap 3
    (bits,) = EliasOmegaSparse(7).encode(row)
    assert as_str(bits) == omega(3) + "1" + OMEGA[n]
    assert torch.equal(EliasOmegaSparse(7).decode([bits], (1, 128)), row)


def test_omega_length_matches_the_recursion() -> None:
    values = [1, 2, 3, 4, 7, 8, 15, 16, 17, 255, 256, 65535, 65536, 2**40, 2**53 + 1, 2**62 - 1, 2**63 - 1]
    assert omega_length(torch.tensor(values)).tolist() == [len(omega(v)) for v in values]


@st.composite
def rows(draw: st.DrawFn) -> tuple[torch.Tensor, int]:
    level_bits = draw(st.integers(1, 20))
    d = draw(st.integers(1, 400))
    n = draw(st.integers(1, 3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**20)))
    top = 2**level_bits - 1
    x = torch.randint(-top, top + 1, (n, d), generator=gen)
    x *= torch.rand(n, d, generator=gen) < draw(st.sampled_from([0.0, 0.02, 0.3, 1.0]))
    return x, level_bits


@settings(max_examples=60, deadline=None)
@given(rows(), st.sampled_from([7, 64, 1 << 16]))
def test_round_trip_and_exact_bits(case: tuple[torch.Tensor, int], chunk: int) -> None:
    x, level_bits = case
    codec = EliasOmegaSparse(level_bits)
    streams = codec.encode(x)
    assert codec.bits(x).tolist() == [s.size for s in streams]
    saved = codecs._CHUNK
    codecs._CHUNK = chunk
    try:
        assert torch.equal(codec.decode(streams, tuple(x.shape)), x)
    finally:
        codecs._CHUNK = saved


def _reference(bits: list[int], d: int, level_bits: int) -> list[tuple[int, int]]:
    """A plain sequential parser with the same caps: a group of more than ``width`` bits is refused."""

    def omega_at(i: int, width: int) -> tuple[int, int]:
        n = 1
        while True:
            if i >= len(bits):
                raise ValueError("truncated")
            if bits[i] == 0:
                return n, i + 1
            if n + 1 > width or i + n + 1 > len(bits):
                raise ValueError("too wide or truncated")
            n, i = int("".join(map(str, bits[i : i + n + 1])), 2), i + n + 1

    entries, i, pos = [], 0, 0
    while i < len(bits):
        gap, i = omega_at(i, d.bit_length())
        if i >= len(bits):
            raise ValueError("no sign bit")
        sign, i = bits[i], i + 1
        level, i = omega_at(i, level_bits)
        pos += gap
        if pos > d:
            raise ValueError("past d")
        entries.append((pos, -level if sign else level))
    return entries


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[int], int, int]:
    d = draw(st.integers(1, 300))
    level_bits = draw(st.integers(1, 9))
    mode = draw(st.sampled_from(["random", "codes", "encoded"]))
    if mode == "random":  # mostly malformed
        return draw(st.lists(st.integers(0, 1), max_size=160)), d, level_bits
    if mode == "codes":  # well-formed codes whose values may pass the caps (gap > d, level too wide)
        entries = draw(
            st.lists(st.tuples(st.integers(1, 2 * d + 1), st.integers(1, 2 ** (level_bits + 1))), max_size=6)
        )
        text = "".join(omega(g) + draw(st.sampled_from("01")) + omega(v) for g, v in entries)
        return [int(b) for b in text], d, level_bits
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**20)))
    top = 2**level_bits - 1
    row = torch.randint(-top, top + 1, (d,), generator=gen)
    row *= torch.rand(d, generator=gen) < draw(st.sampled_from([0.05, 0.5, 1.0]))
    bits = EliasOmegaSparse(level_bits).encode(row)[0].astype(int).tolist()
    for _ in range(draw(st.integers(0, 2))):
        if bits:
            bits[draw(st.integers(0, len(bits) - 1))] ^= 1
    return bits, d, level_bits


@settings(max_examples=150, deadline=None)
@given(streams(), st.sampled_from([5, 32, 1 << 16]))
def test_the_vectorised_decoder_agrees_with_a_sequential_parser(
    case: tuple[list[int], int, int], chunk: int
) -> None:
    bits, d, level_bits = case
    expected = or_none(lambda: _reference(bits, d, level_bits))
    got = decode_in_chunks(codecs._decode_omega_row, bits, d, level_bits, chunk)
    assert got == expected


def test_codes_wider_than_the_caps_are_refused() -> None:
    wide_level = torch.tensor([[4, 0, 0]])  # |level| 4 needs level_bits >= 3
    bits = EliasOmegaSparse(3).encode(wide_level)
    with pytest.raises(ValueError, match="Elias-omega"):
        EliasOmegaSparse(2).decode(bits, (1, 3))
    far = [int(b) for b in omega(8) + "0" + omega(1)]  # gap 8 in a row of 3: a 4-bit group, cap is 2
    with pytest.raises(ValueError, match="Elias-omega"):
        EliasOmegaSparse(3).decode([np.array(far, dtype=bool)], (1, 3))
    with pytest.raises(ValueError, match="level of 3\\+ bits"):
        EliasOmegaSparse(2).encode(wide_level)


def test_long_malformed_rows_fail_cleanly() -> None:
    gen = np.random.default_rng(0)
    for bits in (np.ones(200_000, dtype=bool), gen.random(200_000) < 0.5):
        with pytest.raises(ValueError):
            EliasOmegaSparse(8).decode([bits], (1, 1000))


def test_qsgd_selects_omega_and_counts_its_bits(rng: torch.Generator) -> None:
    c = C.QSGD(s=15, coding="elias-omega")
    msg = c.compress(torch.randn(3, 200), rng)
    codec = msg.fields["levels"].codec
    assert isinstance(codec, EliasOmegaSparse) and codec.level_bits == 4
    assert msg.bits_per_row.tolist() == [32 + s.size for s in codec.encode(msg.get("levels"))]
    back = Message.from_bytes(msg.to_bytes(), Expect(d=200, senders=3))
    assert torch.equal(c.decompress(back), c.decompress(msg))
    with pytest.raises(ValueError, match="coding must be"):
        C.QSGD(s=3, coding="omega")


def test_qsgd_layers_passes_the_coding_through(rng: torch.Generator) -> None:
    shapes = [(6, 5), (10,)]
    c = C.get("qsgd-layers", bits=2, shapes=shapes, coding="elias-omega")
    msg = c.compress(torch.randn(2, 40), rng)
    levels = [f for k, f in msg.fields.items() if k.endswith("levels")]
    assert len(levels) == 2 and all(isinstance(f.codec, EliasOmegaSparse) for f in levels)
    expected = sum(32 + torch.tensor([s.size for s in f.codec.encode(f.data)]) for f in levels)
    assert msg.bits_per_row.tolist() == expected.tolist()
    back = Message.from_bytes(msg.to_bytes(), Expect(d=40, senders=2))
    assert torch.equal(c.decompress(back), c.decompress(msg))


def test_the_wire_tag_rebuilds_the_codec_and_refuses_bad_widths() -> None:
    assert codecs.codec_from_wire(EliasOmegaSparse.tag, 9) == EliasOmegaSparse(9)
    assert EliasOmegaSparse(9) != codecs.EliasSparse(9)
    for bad in (0, 64):
        with pytest.raises(ValueError, match="EliasOmegaSparse level width"):
            codecs.codec_from_wire(EliasOmegaSparse.tag, bad)


def test_a_gamma_decoder_refuses_an_omega_message(rng: torch.Generator) -> None:
    msg = C.QSGD(s=4, coding="elias-omega").compress(torch.randn(2, 30), rng)
    with pytest.raises(ValueError):
        C.QSGD(s=4).decompress(Message.from_bytes(msg.to_bytes(), Expect(d=30, senders=2)))


def test_the_widest_levels_round_trip_with_exact_bits() -> None:
    row = torch.tensor([[2**62 + 5, 0, -(2**63 - 1), 2**53 + 1, 1]])
    codec = EliasOmegaSparse(63)
    (bits,) = codec.encode(row)
    assert codec.bits(row).tolist() == [bits.size]
    assert torch.equal(codec.decode([bits], (1, 5)), row)
