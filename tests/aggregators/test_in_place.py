"""ARC and Clipping with ``in_place=True``: the same output as the copying rule, written into the input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import ARC, Clipping
from robustfl.aggregators._in_place import ROW_BY_ROW_MIN_D
from robustfl.aggregators.base import Aggregator


def rules(f: int) -> list[tuple[Aggregator, Aggregator]]:
    return [(ARC(f), ARC(f, in_place=True)), (Clipping(2.0), Clipping(2.0, in_place=True))]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 50), seed=st.integers(0, 2**31 - 1), weights=st.booleans())
def test_in_place_equals_the_copy_bit_for_bit(n: int, d: int, seed: int, weights: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen) * torch.rand(n, 1, generator=gen) * 5
    if weights:  # model weights: a large common part
        x = 1e3 + 1e-3 * x
    for copying, writing in rules(n // 3):
        expected = copying(x)
        y = x.clone()
        out = writing(y)
        assert torch.equal(out, expected)
        assert out.data_ptr() == y.data_ptr()


@pytest.mark.parametrize("d", [7, ROW_BY_ROW_MIN_D], ids=["one-pass", "row-by-row"])
def test_non_finite_rows_become_zero_in_place(d: int) -> None:
    x = torch.randn(12, d) * torch.linspace(0.01, 10, 12)[:, None]
    x[2, 3], x[5, 0], x[8, 1] = float("nan"), float("inf"), 1e38
    for copying, writing in rules(3):
        y = x.clone()
        assert torch.equal(writing(y), copying(x))
        assert torch.equal(y, copying(x))


@pytest.mark.parametrize("weights", [False, True], ids=["gradients", "weights"])
def test_long_rows_in_place_equal_the_copy(weights: bool) -> None:
    x = torch.randn(9, ROW_BY_ROW_MIN_D + 3) * torch.linspace(0.001, 0.1, 9)[:, None]
    x = 1e3 + x if weights else x
    for copying, writing in [(ARC(2), ARC(2, in_place=True)), (Clipping(3.0), Clipping(3.0, in_place=True))]:
        y = x.clone()
        assert torch.equal(writing(y), copying(x)) and torch.equal(y, copying(x))


def test_only_the_clipped_rows_are_written() -> None:
    x = torch.randn(10, 5)
    x[4] *= 100.0
    y = x.clone()
    Clipping(3.0, in_place=True)(y)
    kept = torch.linalg.vector_norm(x, dim=1) <= 3.0
    assert torch.equal(y[kept], x[kept]) and not torch.equal(y[4], x[4])


def test_inputs_autograd_tracks_are_not_written() -> None:
    x = (torch.randn(8, 4) * 5).requires_grad_(True)
    before = x.detach().clone()
    out = ARC(2, in_place=True)(x)
    out.sum().backward()
    assert torch.equal(x.detach(), before) and x.grad is not None


@pytest.mark.parametrize("rule", [ARC, Clipping])
def test_in_place_must_be_a_bool(rule: type[Aggregator]) -> None:
    with pytest.raises(ValueError, match="in_place must be true or false"):
        rule(in_place="yes")  # type: ignore[call-arg]
