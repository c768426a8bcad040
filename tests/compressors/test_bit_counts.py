"""Bit counts equal sizes computed by hand on small cases."""

import numpy as np
import pytest
import torch

from robustfl import compressors as C
from robustfl.compressors.codecs import EliasSparse, gamma_length


def bits_of(c: C.Compressor, x: torch.Tensor, rng: torch.Generator) -> list[int]:
    return c.compress(x, rng).bits_per_row.tolist()


def test_fixed_width_compressors_match_hand_counts(rng: torch.Generator) -> None:
    x = torch.randn(2, 10)
    assert bits_of(C.Identity(), x, rng) == [320, 320]
    assert bits_of(C.Identity(), x.half(), rng) == [160, 160]
    assert bits_of(C.TopK(k=3), x, rng) == [3 * (4 + 32)] * 2  # ceil(log2 10) = 4
    assert bits_of(C.RandK(k=3), x, rng) == [63 + 3 * 32] * 2  # shared seed: no index bits
    assert bits_of(C.RandK(k=3, shared_seed=False), x, rng) == [3 * (4 + 32)] * 2
    assert bits_of(C.Sign(), x, rng) == [10 + 32] * 2
    assert bits_of(C.TernGrad(), x, rng) == [2 * 10 + 32] * 2
    assert bits_of(C.QSGD(s=3, coding="fixed"), x, rng) == [32 + 10 * (1 + 2)] * 2
    assert bits_of(C.QSGD(s=4, coding="fixed"), x, rng) == [32 + 10 * (1 + 3)] * 2


def test_batch_bits_are_the_sum_of_rows(rng: torch.Generator) -> None:
    msg = C.QSGD(s=2).compress(torch.randn(5, 40), rng)
    assert msg.bits == int(msg.bits_per_row.sum())
    assert [msg.row(i).bits for i in range(5)] == msg.bits_per_row.tolist()


def test_elias_code_of_a_small_vector_is_the_hand_written_bit_string() -> None:
    # entries at 1-based positions 2 (level +2) and 5 (level -1):
    # gap 2 -> gamma "010", sign "0", level 2 -> "010"; gap 3 -> "011", sign "1", level 1 -> "1"
    levels = torch.tensor([[0, 2, 0, 0, -1]])
    codec = EliasSparse()
    expected = "010" + "0" + "010" + "011" + "1" + "1"
    (bits,) = codec.encode(levels)
    assert "".join("1" if b else "0" for b in bits) == expected
    assert codec.bits(levels).tolist() == [len(expected)]
    assert torch.equal(codec.decode([bits], (1, 5)), levels)


def test_qsgd_elias_count_equals_the_encoded_stream(rng: torch.Generator) -> None:
    msg = C.QSGD(s=8).compress(torch.randn(4, 300), rng)
    levels = msg.get("levels")
    streams = EliasSparse().encode(levels)
    assert [32 + s.size for s in streams] == msg.bits_per_row.tolist()


def test_gamma_length_matches_definition() -> None:
    v = torch.tensor([1, 2, 3, 4, 7, 8, 1023, 1024, 2**40])
    expected = [2 * int(np.floor(np.log2(int(a)))) + 1 for a in v]
    assert gamma_length(v).tolist() == expected


def test_zero_vector_costs_only_the_norm(rng: torch.Generator) -> None:
    msg = C.QSGD(s=4).compress(torch.zeros(10), rng)
    assert msg.bits == 32
    assert torch.equal(C.QSGD(s=4).decompress(msg), torch.zeros(10))


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: C.TopK(), "exactly one of k"),
        (lambda: C.TopK(k=2, ratio=0.5), "exactly one of k"),
        (lambda: C.RandK(ratio=1.5), "ratio must be in"),
        (lambda: C.RandK(k=0), "k must be >= 1"),
        (lambda: C.QSGD(s=0), "s must be >= 1"),
        (lambda: C.QSGD(coding="huffman"), "coding must be"),
    ],
)
def test_bad_parameters_raise_clear_errors(factory, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


@pytest.mark.parametrize(
    "bad", [torch.zeros(2, 3, 4), torch.zeros(0), torch.zeros(3, dtype=torch.int64), [1.0]]
)
def test_bad_input_raises_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match="x must be"):
        C.TopK(k=1).compress(bad)  # type: ignore[arg-type]


def test_registry_builds_by_name() -> None:
    assert isinstance(C.get("qsgd", s=2), C.QSGD)
    with pytest.raises(ValueError, match="unknown compressor"):
        C.get("zip")


def test_build_fills_in_model_shapes_and_error_feedback() -> None:
    shapes = [(4, 3), (4,)]
    c = C.build("powersgd", {"rank": 1}, shapes=shapes)
    assert isinstance(c, C.PowerSGD) and c.shapes == shapes
    svd = C.build("atomo", {"atoms": "svd", "budget": 1.0}, shapes=shapes)
    assert isinstance(svd, C.ATOMO) and svd.shapes == shapes
    assert C.build("atomo", {"budget": 2.0}, shapes=shapes).shapes is None  # entries: no shapes
    ef = C.build("topk", {"k": 2}, error_feedback=True, shapes=shapes)
    assert isinstance(ef, C.ErrorFeedback) and isinstance(ef.compressor, C.TopK)


def test_cli_lists_compressors() -> None:
    from typer.testing import CliRunner

    from robustfl.cli import app

    result = CliRunner().invoke(app, ["list", "compressors"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("qsgd", "atomo", "powersgd", "blocksampling", "compose", "randl"):
        assert name in result.output


def _reference_decode(bits: np.ndarray, d: int) -> np.ndarray:
    """Plain sequential reading of the (gap, sign, level) stream, to check the vectorised decoder."""
    out = np.zeros(d, dtype=np.int64)
    p, pos = 0, 0

    def gamma(p: int) -> tuple[int, int]:
        zeros = 0
        while not bits[p + zeros]:
            zeros += 1
        v = int("".join("1" if b else "0" for b in bits[p + zeros : p + 2 * zeros + 1]), 2)
        return v, p + 2 * zeros + 1

    while p < bits.size:
        gap, p = gamma(p)
        negative, p = bool(bits[p]), p + 1
        level, p = gamma(p)
        pos += gap
        out[pos - 1] = -level if negative else level
    return out


def test_vectorised_elias_decoder_matches_a_sequential_reading(rng: torch.Generator) -> None:
    codec = EliasSparse()
    for s, d in ((1, 50), (7, 300), (1000, 64), (3, 1)):
        levels = C.QSGD(s=s).compress(torch.randn(3, d, generator=rng), rng).get("levels")
        streams = codec.encode(levels)
        decoded = codec.decode(streams, (3, d))
        assert torch.equal(decoded, levels.long())
        for r, bits in enumerate(streams):
            assert np.array_equal(_reference_decode(bits, d), levels[r].long().numpy())


def test_elias_decoder_rejects_malformed_streams(rng: torch.Generator) -> None:
    codec = EliasSparse()
    levels = torch.tensor([[0, 3, 0, -1, 0, 0, 2, 0]])
    (bits,) = codec.encode(levels)
    # triplets: (gap 2, +, 3) = 3+1+3 bits, (gap 2, -, 1) = 3+1+1, (gap 3, +, 2) = 3+1+3
    boundaries = {7, 12}
    for cut in range(1, bits.size):
        if cut in boundaries:  # a whole number of triplets is a valid, shorter message
            assert codec.decode([bits[:cut]], (1, 8))[0, 6] == 0
            continue
        with pytest.raises(ValueError, match="Elias"):
            codec.decode([bits[:cut]], (1, 8))
    with pytest.raises(ValueError, match="Elias"):
        codec.decode([np.zeros(5, dtype=bool)], (1, 8))
    with pytest.raises(ValueError, match="beyond the row length"):
        codec.decode([bits], (1, 5))
    extended = np.concatenate([bits, np.array([True, False, True])])  # gap 1, sign +, level 1: fits d=8
    assert codec.decode([extended], (1, 8))[0, 7] == 1
