"""QBGMD (seed 000): BGMD on QSGD-quantised client messages, with the bits per round."""

import pytest
import torch

from robustfl.aggregators import BlockGeometricMedian
from robustfl.compressors import QSGD, Compose, Message
from robustfl.compressors.codecs import EliasSparse
from robustfl.compressors.qbgmd import QBGMD


def grads(rng: torch.Generator) -> torch.Tensor:
    honest = torch.randn(8, 60, generator=rng) * 0.1 + 1.0
    byzantine = torch.full((2, 60), -50.0)
    return torch.cat([honest, byzantine])


def test_quantize_reading_is_bgmd_on_the_decoded_qsgd_rows(rng: torch.Generator) -> None:
    g = grads(rng)
    q = QBGMD(s=8, k=10, seed=3)
    result = q.round(g, torch.Generator().manual_seed(5))
    msg = QSGD(s=8).compress(g, torch.Generator().manual_seed(5))
    expected = BlockGeometricMedian(k=10, seed=3)(QSGD(s=8).decompress(msg))
    torch.testing.assert_close(result.aggregate, expected)
    assert result.bits == msg.bits and result.bits_per_client.tolist() == msg.bits_per_row.tolist()
    assert result.broadcast_bits == 0 and result.indices.numel() == 10


def test_block_reading_counts_only_the_block_codes_and_the_indices(rng: torch.Generator) -> None:
    g = grads(rng)
    quant = QBGMD(s=8, k=10, seed=3).round(g, torch.Generator().manual_seed(5))
    block = QBGMD(s=8, k=10, seed=3, reading="block").round(g, torch.Generator().manual_seed(5))
    torch.testing.assert_close(block.aggregate, quant.aggregate)  # same rows, same BGMD draws
    levels = QSGD(s=8).compress(g, torch.Generator().manual_seed(5)).get("levels")[:, block.indices]
    assert block.bits_per_client.tolist() == (32 + EliasSparse().bits(levels)).tolist()
    assert block.broadcast_bits == 10 * 6  # ceil(log2 60) = 6
    assert block.bits < quant.bits


def test_qbgmd_is_robust_to_the_byzantine_rows(rng: torch.Generator) -> None:
    g = grads(rng)
    q = QBGMD(s=16, ratio=1.0)
    out = q.round(g, rng).aggregate
    assert float((out - 1.0).abs().max()) < 0.5  # the mean would be pulled to about -9


def test_lemma_4_message_round_trips_as_one_compressor(rng: torch.Generator) -> None:
    c = Compose({"name": "blocksampling", "k": 6}, QSGD(s=4))
    msg = c.compress(grads(rng), rng)
    assert torch.equal(c.decompress(Message.from_bytes(msg.row(0).to_bytes())), c.decompress(msg)[:1])


def test_qbgmd_rejects_bad_settings(rng: torch.Generator) -> None:
    with pytest.raises(ValueError, match="reading must be"):
        QBGMD(k=3, reading="both")
    with pytest.raises(ValueError, match="exactly one of k"):
        QBGMD()
    with pytest.raises(ValueError, match="one row per client"):
        QBGMD(k=3).round(torch.randn(20), rng)
