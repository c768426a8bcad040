"""Bytes from Byzantine senders: the receiver's expectation, size caps, Elias code widths, canonical
parsing and parameter checks are enforced before anything large is allocated."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import torch
from chunked_decode import decode_in_chunks, or_none
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_frames import field, frame, gamma, triplet, with_crc

from robustfl import compressors as C
from robustfl.compressors import codecs
from robustfl.compressors.base import Message
from robustfl.compressors.wire import Expect

ELIAS, FLOAT, UINT = 3, 1, 2
PER_ROW, PER_ROW_LIST = 0, 1


def qsgd_frame(levels_bits: list[int], *, d: int = 8, s: int = 4, level_param: int | None = None) -> bytes:
    """A one-sender QSGD(s) frame: a float32 norm of 1.0 and one Elias row."""
    norm_bits = np.unpackbits(np.frombuffer(struct.pack("<f", 1.0), np.uint8), bitorder="little")
    fields = [
        field("norm", FLOAT, 3, PER_ROW, [(1, 1)], [32]),
        field(
            "levels",
            ELIAS,
            s.bit_length() if level_param is None else level_param,
            PER_ROW,
            [(1, d)],
            [len(levels_bits)],
        ),
    ]
    return frame(fields, [*norm_bits, *levels_bits], d=d, params=C.QSGD(s=s).wire_params())


def test_a_valid_hand_made_frame_decodes() -> None:
    """The frame builder matches the real layout, so the refusals below are about their one defect."""
    data = qsgd_frame(triplet(2, 3) + triplet(5, -1))
    out = C.QSGD(s=4).decompress(Message.from_bytes(data, Expect(d=8, senders=1)))
    assert out.tolist() == [[0.0, 0.75, 0.0, 0.0, 0.0, 0.0, -0.25, 0.0]]


def test_declared_d_is_checked_against_the_expectation_before_allocation() -> None:
    data = qsgd_frame([], d=2**32 - 1)  # a tiny message claiming a 32 GiB level array
    assert len(data) < 100
    with pytest.raises(ValueError, match="expects d=1000"):
        Message.from_bytes(data, Expect(d=1000, senders=1))
    with pytest.raises(ValueError, match="more than this receiver accepts"):
        Message.from_bytes(data, Expect())


def test_a_sparse_message_over_a_huge_d_is_refused(rng: torch.Generator) -> None:
    msg = C.TopK(k=3).compress(torch.randn(16, generator=rng), rng)
    big = Message(msg.compressor, 1, 2**27, msg.dtype, msg.fields, squeeze=True, params=msg.params)
    data = big.to_bytes()
    assert len(data) < 200
    with pytest.raises(ValueError, match="expects d=16"):
        Message.from_bytes(data, Expect(d=16, senders=1))
    with pytest.raises(ValueError, match="more than this receiver accepts"):
        Message.from_bytes(data, Expect())


def test_senders_and_size_cap_are_enforced(rng: torch.Generator) -> None:
    msg = C.QSGD(s=4).compress(torch.randn(3, 50, generator=rng), rng)
    data = msg.to_bytes()
    assert Message.from_bytes(data, Expect(d=50, senders=3)).n == 3
    with pytest.raises(ValueError, match="expects 1"):
        Message.from_bytes(data, Expect(d=50, senders=1))
    with pytest.raises(ValueError, match="max_bytes=20"):
        Message.from_bytes(data, Expect(max_bytes=20))
    with pytest.raises(ValueError, match="expect must be an Expect"):
        Message.from_bytes(data, {"d": 50})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"d": 0}, "d"), ({"senders": True}, "senders"), ({"max_bytes": -1}, "max_bytes"), ({"d": 2**40}, "d")],
)
def test_expect_validates_its_arguments(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=rf"Expect\({name}=\.\.\.\)"):
        Expect(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bits",
    [
        triplet(1, 2**63),  # a level of 64 bits: would wrap to a negative int64
        triplet(2**64 + 5, 1),  # a 65-bit gap: would be read modulo 2**64
        triplet(2**63 + 2**62, 1),  # a 64-bit gap
        triplet(9, 1),  # a gap past d = 8 (same bit width as 8: caught by the position check)
        triplet(1, 8),  # a level of 4 bits for s = 4 (3 bits)
    ],
    ids=["level-2^63", "gap-2^64+5", "gap-2^63+2^62", "gap-past-d", "level-wider-than-s"],
)
def test_elias_codes_wider_than_the_largest_legal_value_are_refused(bits: list[int]) -> None:
    with pytest.raises(ValueError, match="Elias"):
        Message.from_bytes(qsgd_frame(bits), Expect(d=8, senders=1))


def test_a_long_zero_run_is_refused_without_reading_it() -> None:
    zeros = 400_000  # one "gap" code of 800 kbit: the old decoder looped once per zero bit
    bits = np.zeros(2 * zeros + 3, dtype=np.uint8)
    bits[zeros] = bits[-1] = 1
    with pytest.raises(ValueError, match="too wide"):
        Message.from_bytes(qsgd_frame(bits.tolist(), d=2**20), Expect(d=2**20, senders=1))


def test_a_shape_with_2_to_62_rows_is_a_value_error() -> None:
    fields = [field("norm", FLOAT, 3, PER_ROW, [(1, 2**31, 2**31, 0)], [])]
    with pytest.raises(ValueError, match="truncated"):
        Message.from_bytes(frame(fields, [], params=C.QSGD(s=4).wire_params()))


def test_oversized_shapes_in_the_header_raise() -> None:
    fields = [field("norm", FLOAT, 3, PER_ROW, [(2**32 - 1,) * 4], [])]
    with pytest.raises(ValueError, match="larger than the message allows"):
        Message.from_bytes(frame(fields, []))


def test_a_list_field_with_a_mutated_ndim_is_a_value_error(rng: torch.Generator) -> None:
    c = C.ATOMO(budget=3.0)
    data = c.compress(torch.randn(20, generator=rng), rng).to_bytes()
    at = data.index(b"\x07sat_idx") + 8 + 3  # the ndim byte of the list's first shape
    assert data[at] == 1
    (k,) = struct.unpack_from("<I", data, at + 1)
    forged = data[:at] + struct.pack("<BII", 2, 1, k) + data[at + 5 :]
    with pytest.raises(ValueError, match="1-D rows"):
        c.decompress(Message.from_bytes(with_crc(forged)))


def test_parsing_is_canonical() -> None:
    good = triplet(2, 3)
    Message.from_bytes(qsgd_frame(good))
    padded = qsgd_frame([*good, 0, 0, 0])  # bits after the declared length, inside the last byte
    body = bytearray(padded)
    body[-5] |= 0x80  # a non-zero padding bit
    with pytest.raises(ValueError, match="padding"):
        Message.from_bytes(with_crc(body))
    norm = field("norm", FLOAT, 3, PER_ROW, [(1, 1)], [32])
    with pytest.raises(ValueError, match="payload has"):
        Message.from_bytes(frame([norm], [0] * 32, extra=b"\x00"))  # a trailing payload byte
    with pytest.raises(ValueError, match="twice"):
        Message.from_bytes(frame([norm, norm], [0] * 64))
    with pytest.raises(ValueError, match="level width 0"):
        Message.from_bytes(qsgd_frame(good, level_param=0))
    with pytest.raises(ValueError, match="dtype or flags"):
        Message.from_bytes(frame([norm], [0] * 32, flags=2))
    norm2 = field("norm", FLOAT, 3, PER_ROW, [(2, 1)], [32, 32])
    with pytest.raises(ValueError, match="flagged 1-D but holds 2 rows"):  # decompress would drop a row
        Message.from_bytes(frame([norm2], [0] * 64, n=2, flags=1))
    with pytest.raises(ValueError, match="wrong bit length"):
        Message.from_bytes(frame([field("norm", FLOAT, 3, PER_ROW, [(1, 1)], [31])], [0] * 31))


def test_compressor_parameters_travel_in_the_header(rng: torch.Generator) -> None:
    x = torch.randn(200, generator=rng)
    msg = C.QSGD(s=4).compress(x, rng)
    data = msg.to_bytes()
    assert Message.from_bytes(data).params == C.QSGD(s=4).wire_params()
    for other in (C.QSGD(s=2), C.QSGD(s=4, coding="fixed")):
        with pytest.raises(ValueError, match="parameters"):
            other.decompress(Message.from_bytes(data))
        with pytest.raises(ValueError, match="parameters"):
            other.decompress(msg)
    top = C.TopK(k=3).compress(x, rng).to_bytes()
    with pytest.raises(ValueError, match="parameters"):
        C.TopK(k=4).decompress(Message.from_bytes(top))
    # a Contractive wrapper sends its inner compressor's messages
    wrapped = C.Contractive(C.QSGD(s=4))
    torch.testing.assert_close(
        wrapped.decompress(Message.from_bytes(data)),
        C.QSGD(s=4).decompress(msg) / (1 + C.QSGD(s=4).omega(200)),
    )
    long = C.PowerSGD(rank=1, shapes=[(3, 3)] * 100)
    assert long.wire_params().startswith("sha256:")


def test_encoding_needs_parameters_and_one_dimensional_list_rows(rng: torch.Generator) -> None:
    msg = C.QSGD(s=4).compress(torch.randn(10, generator=rng), rng)
    bare = Message(msg.compressor, 1, 10, msg.dtype, msg.fields)
    with pytest.raises(ValueError, match="no compressor parameters"):
        bare.to_bytes()


def _dense_qsgd_bytes(d: int) -> tuple[C.QSGD, bytes]:
    q = C.QSGD(s=4096)
    x = torch.randn(d, generator=torch.Generator().manual_seed(0))
    return q, q.compress(x, torch.Generator().manual_seed(1)).to_bytes()


def test_decoding_memory_is_a_small_multiple_of_the_payload() -> None:
    q, data = _dense_qsgd_bytes(200_000)  # about 120 KB, every level non-zero
    tracemalloc.start()
    try:
        out = q.decompress(Message.from_bytes(data, Expect(d=200_000, senders=1)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (200_000,)
    # the output alone is d * (8 int64 levels + 4 float32) bytes; the decoder's own arrays are bounded
    # by its chunk size, so peak / payload stays far below the old decoder's ~670 bytes per byte
    assert peak < 12 * 200_000 + 80 * len(data)


@pytest.mark.parametrize("chunk", [7, 64, 1 << 16])
def test_the_chunked_elias_decoder_matches_the_encoder(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "_CHUNK", chunk)
    gen = torch.Generator().manual_seed(5)
    codec = codecs.EliasSparse(7)
    for density in (0.02, 0.5, 1.0):
        rows = torch.randint(-127, 128, (3, 300), generator=gen)
        rows *= (torch.rand(3, 300, generator=gen) < density).long()
        back = codec.decode(codec.encode(rows), (3, 300))
        assert torch.equal(back, rows)


def test_orbit_shortcut_agrees_with_pointer_doubling() -> None:
    gen = np.random.default_rng(0)
    for size, jumps in ((50, (3, 6)), (2000, (3, 9)), (2000, (3, 40))):
        inside = size - 10
        step = np.arange(size + 2)
        step[:inside] = np.arange(inside) + gen.integers(*jumps, inside)
        step[:inside] = np.minimum(step[:inside], size + 1)
        pts, exit_ = codecs._orbit(step, inside)
        ref, ref_exit = codecs._orbit_doubling(step, 0, inside)
        assert exit_ == ref_exit and np.array_equal(pts, ref)


def test_gamma_bits_helper_matches_the_codec() -> None:
    """The test frames use the same gamma code as the encoder (so the refusals are not artefacts)."""
    row = torch.tensor([[0, 3, 0, 0, -1, 0, 0, 0]])
    bits = codecs.EliasSparse(3).encode(row)[0].astype(int).tolist()
    assert bits == triplet(2, 3) + triplet(3, -1)
    assert gamma(1) == [1] and gamma(5) == [0, 0, 1, 0, 1]


def test_messages_from_the_engines_encode_path_carry_parameters(rng: torch.Generator) -> None:
    x = torch.randn(2, 36, generator=rng)
    shapes = [(6, 5), (6,)]
    for c in (
        C.PowerSGD(rank=1, shapes=shapes),
        C.ErrorFeedback(C.QSGD(s=4)),
        C.TopK(k=3),
        C.get("signum", beta=0.5),
        C.get("layerwise", inner="qsgd", shapes=shapes),
        C.get("layerwise", inner={"name": "powersgd", "rank": 1}, shapes=shapes),
    ):
        state = {k: torch.stack([v, v]) for k, v in c.init_row_state(x[0]).items()}
        msg, _ = c.encode(x, rng, state)
        assert msg.params is not None
        back = Message.from_bytes(msg.to_bytes(), Expect(d=36, senders=2))
        assert torch.equal(c.decompress(back), c.decompress(msg))


def _reference_elias(bits: list[int], d: int, level_bits: int) -> list[tuple[int, int]]:
    """A plain sequential parser of the (gap, sign, level) stream with the same width caps."""

    def gamma_at(i: int, width: int) -> tuple[int, int]:
        z = 0
        while i + z < len(bits) and bits[i + z] == 0:
            z += 1
        if i + z >= len(bits) or z >= width or i + 2 * z + 1 > len(bits):
            raise ValueError("bad code")
        return int("".join(map(str, bits[i + z : i + 2 * z + 1])), 2), i + 2 * z + 1

    entries, i, pos = [], 0, 0
    while i < len(bits):
        gap, i = gamma_at(i, d.bit_length())
        if i >= len(bits):
            raise ValueError("no sign bit")
        sign, i = bits[i], i + 1
        level, i = gamma_at(i, level_bits)
        pos += gap
        if pos > d:
            raise ValueError("past d")
        entries.append((pos, -level if sign else level))
    return entries


@st.composite
def elias_streams(draw: st.DrawFn) -> tuple[list[int], int, int]:
    d = draw(st.integers(1, 300))
    level_bits = draw(st.integers(1, 9))
    mode = draw(st.sampled_from(["random", "triplets", "encoded"]))
    if mode == "random":  # random bits: mostly malformed
        return draw(st.lists(st.integers(0, 1), max_size=160)), d, level_bits
    if mode == "triplets":  # well-formed codes whose values may pass the caps (gap > d, level too wide)
        entries = draw(
            st.lists(
                st.tuples(
                    st.integers(1, 2 * d + 1), st.integers(-(2 ** (level_bits + 1)), 2 ** (level_bits + 1))
                ),
                max_size=6,
            )
        )
        return [b for gap, level in entries if level for b in triplet(gap, level)], d, level_bits
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**20)))
    top = 2**level_bits - 1
    row = torch.randint(-top, top + 1, (d,), generator=gen)
    row *= torch.rand(d, generator=gen) < draw(st.sampled_from([0.05, 0.5, 1.0]))
    bits = codecs.EliasSparse(level_bits).encode(row)[0].astype(int).tolist()
    for _ in range(draw(st.integers(0, 2))):  # a few flipped bits
        if bits:
            at = draw(st.integers(0, len(bits) - 1))
            bits[at] ^= 1
    return bits, d, level_bits


@settings(max_examples=150, deadline=None)
@given(elias_streams(), st.sampled_from([5, 32, 1 << 16]))
def test_the_vectorised_elias_decoder_agrees_with_a_sequential_parser(
    case: tuple[list[int], int, int], chunk: int
) -> None:
    bits, d, level_bits = case
    expected = or_none(lambda: _reference_elias(bits, d, level_bits))
    got = decode_in_chunks(codecs._decode_elias_row, bits, d, level_bits, chunk)
    assert got == expected
