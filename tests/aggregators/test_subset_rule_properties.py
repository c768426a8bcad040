"""Properties shared by the ByzFL-parity rules, checked once for every rule that has them.

Permutation invariance and "n identical rows give that row" for MDA, Meamed, CAF and SMEA; "f bad rows
(±1e6, NaN, Inf, 1e38) leave the output inside the honest rows' bounding box" for MDA and Meamed
(CAF's and SMEA's bad-row guarantees differ and are tested in their own files).
"""

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import CAF, MDA, SMEA, Aggregator, Meamed

# rule -> (constructor from f, the largest n to draw: MDA and SMEA enumerate subsets)
RULES: dict[str, tuple[Callable[[int], Aggregator], int]] = {
    "MDA": (MDA, 8),
    "Meamed": (Meamed, 9),
    "CAF": (CAF, 9),
    "SMEA": (SMEA, 8),
}
BOXED = ["MDA", "Meamed"]


@pytest.mark.parametrize("name", sorted(RULES))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_permutation_invariant_and_identical_rows(name: str, data: st.DataObject) -> None:
    rule, max_n = RULES[name]
    n, d = data.draw(st.integers(3, max_n)), data.draw(st.integers(1, 4))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    f = (n - 1) // 2
    perm = torch.randperm(n, generator=gen)
    assert torch.allclose(rule(f)(x), rule(f)(x[perm]))
    assert torch.allclose(rule(f)(x[:1].expand(n, d)), x[0])


@pytest.mark.parametrize("name", BOXED)
@settings(max_examples=50, deadline=None)
@given(data=st.data(), bad=st.sampled_from([1e6, -1e6, math.nan, math.inf, 1e38]))
def test_bad_rows_stay_inside_honest_box(name: str, data: st.DataObject, bad: float) -> None:
    rule, max_n = RULES[name]
    n, d = data.draw(st.integers(3, max_n)), data.draw(st.integers(1, 4))
    f = (n - 1) // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 2**16))))
    x[:f] = bad
    out = rule(f)(x)
    honest = x[f:]
    assert torch.isfinite(out).all()
    assert (out >= honest.min(0).values - 1e-5).all() and (out <= honest.max(0).values + 1e-5).all()
