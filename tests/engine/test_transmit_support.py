"""The transmit phase with an upload support (``Algorithm.upload_support``): only the support's ``K``
values go on the wire, raw or through the compressor, and the server's rows are zero off it."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from robustfl import compressors as C
from robustfl.algorithms import FedAvg, MaskedTraining
from robustfl.compressors.error_feedback import MEMORY
from robustfl.engine import phases
from robustfl.streams import Streams

M, D = 4, 50
IDS = torch.arange(M)
ON = {"masked": torch.tensor(True)}  # a masked round's broadcast flag


def support(k: int, seed: int) -> Tensor:
    mask = torch.zeros(D, dtype=torch.bool)
    mask[torch.randperm(D, generator=torch.Generator().manual_seed(seed))[:k]] = True
    return mask


def rows(mask: Tensor, off: float = 0.0) -> Tensor:
    """Random rows on the support, ``off`` elsewhere (what a Byzantine client may put there)."""
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(1))
    return torch.where(mask, x, torch.full_like(x, off))


def send(
    compressor: C.Compressor | None, parts: dict[str, Tensor], mask: Tensor | None, state: dict
) -> tuple:
    return phases.transmit(compressor, parts, IDS, state, Streams(0), 3, mask)


def test_top_k_bits_are_those_of_a_k_wide_message() -> None:
    mask = support(17, 0)
    out, bits, _ = send(C.TopK(k=5), {"update": rows(mask, off=1e3)}, mask, {})
    # TopK's documented cost: k (ceil(log2 width) + 32) bits per sender, here over the K = 17 values
    assert bits == M * 5 * (math.ceil(math.log2(17)) + 32)
    x = rows(mask)
    for i in range(M):  # the 5 largest support values of each row survive, zeros elsewhere
        keep = x[i].abs().topk(5).indices
        expect = torch.zeros(D)
        expect[keep] = x[i, keep]
        assert torch.equal(out["update"][i], expect)


def test_qsgd_bits_are_those_of_a_k_wide_message() -> None:
    mask = support(23, 1)
    out, bits, _ = send(C.QSGD(s=4, coding="fixed"), {"update": rows(mask)}, mask, {})
    # fixed coding: 32 (norm) + width (1 + ceil(log2(s + 1))) bits per sender, over K = 23 values
    assert bits == M * (32 + 23 * (1 + math.ceil(math.log2(5))))
    assert not bool(out["update"][:, ~mask].any())


def test_without_a_compressor_the_support_travels_at_32_bits_and_the_rest_is_zero() -> None:
    mask = support(9, 2)
    x = rows(mask, off=7.0)
    out, bits, _ = send(None, {"update": x}, mask, {})
    assert bits == M * 9 * 32
    assert torch.equal(out["update"], torch.where(mask, x, torch.zeros_like(x)))


@pytest.mark.parametrize("compressor", [None, C.TopK(k=5), C.QSGD(s=2)])
def test_no_support_or_a_full_one_changes_nothing_bit_for_bit(compressor: C.Compressor | None) -> None:
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(3))
    dense, dense_bits, _ = phases.transmit(compressor, {"update": x}, IDS, {}, Streams(0), 3)
    full = phases.upload_support(MaskedTraining(), compressor, {"mask": torch.ones(D, dtype=torch.bool)} | ON)
    assert full is None  # a full support is no support
    again, bits, _ = send(compressor, {"update": x}, full, {})
    assert bits == dense_bits and torch.equal(again["update"], dense["update"])


def test_error_feedback_memory_stays_d_wide_and_is_kept_off_the_support() -> None:
    ef = C.ErrorFeedback(C.TopK(k=3))
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(4))
    state = phases.init_compressor_state(ef, {"update": x[0]}, M)
    key = f"{phases.COMPRESSOR_STATE}.update.{MEMORY}"
    # a dense round leaves residuals everywhere
    _, _, state = send(ef, {"update": x}, None, state)
    before = state[key].clone()
    assert float(before.abs().sum()) > 0
    # masked round on support a: memory off a untouched, on a the residual of the K-wide encode
    a = support(20, 5)
    sent = torch.where(a, x, torch.zeros_like(x))
    out, _, state = send(ef, {"update": sent}, a, state)
    assert state[key].shape == (M, D)
    assert torch.equal(state[key][:, ~a], before[:, ~a])
    torch.testing.assert_close(state[key][:, a], (sent + before)[:, a] - out["update"][:, a])
    # the mask changes (a new masked phase): no crash, memory off the new support untouched again
    b = support(12, 6)
    kept = state[key].clone()
    _, bits, state = send(ef, {"update": torch.where(b, x, torch.zeros_like(x))}, b, state)
    assert bits == M * 3 * (math.ceil(math.log2(12)) + 32)
    assert torch.equal(state[key][:, ~b], kept[:, ~b])
    # the next dense round sends the held residuals too: p = x + e over all d coordinates
    out, _, after = send(ef, {"update": torch.zeros(M, D)}, None, state)
    torch.testing.assert_close(out["update"] + after[key], state[key])


def test_a_compressor_that_reads_layers_encodes_the_d_wide_message() -> None:
    shapes = [(5, 8), (10,)]
    for comp in (C.PowerSGD(rank=1, shapes=shapes), C.ErrorFeedback(C.LayerWise("qsgd", shapes=shapes))):
        assert phases.reads_layers(comp)
        assert phases.upload_support(MaskedTraining(), comp, {"mask": support(9, 7)} | ON) is None
    assert not phases.reads_layers(C.ErrorFeedback(C.TopK(k=3)))


def test_the_support_is_the_core_in_masked_rounds_only_and_is_checked() -> None:
    mask = support(9, 8)
    alg = MaskedTraining()
    assert torch.equal(phases.upload_support(alg, None, {"mask": mask} | ON), mask)
    assert phases.upload_support(alg, None, {"mask": mask, "masked": torch.tensor(False)}) is None
    assert phases.upload_support(FedAvg(), None, {"params": torch.zeros(D)}) is None

    class Bad(FedAvg):
        def upload_support(self, shared: dict) -> Tensor:
            return torch.arange(3)

    with pytest.raises(ValueError, match="upload_support must return a bool Tensor"):
        phases.upload_support(Bad(), None, {})


def test_expand_refuses_a_row_of_another_width() -> None:
    with pytest.raises(ValueError, match="part 'update' has 4 values, the support 9"):
        phases.expand({"update": torch.zeros(1, 4)}, support(9, 9), {"update": D})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=30), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_restrict_then_expand_keeps_the_support_and_zeroes_the_rest(
    bits: list[bool], m: int, seed: int
) -> None:
    mask = torch.tensor(bits)
    x = torch.randn(m, len(bits), generator=torch.Generator().manual_seed(seed))
    other = torch.randn(m, len(bits) + 1)  # a part of another width goes whole
    sent = phases.restrict({"a": x, "b": other}, mask)
    assert sent["a"].shape == (m, int(mask.sum())) and sent["b"] is other
    back = phases.expand(sent, mask, {"a": len(bits), "b": len(bits) + 1})
    assert torch.equal(back["a"], torch.where(mask, x, torch.zeros_like(x))) and back["b"] is other
    assert phases.sent_width(mask, len(bits)) == int(mask.sum()) and phases.sent_width(None, 7) == 7
