"""Property tests for the new defences: invariances their definitions imply."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import DnC, FLTrust
from robustfl.aggregators._cosine import cosine_distances

SEEDS = st.integers(0, 2**31 - 1)


def rows(seed: int, n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.integers(3, 9), st.integers(1, 12), st.floats(-1e3, 1e3))
def test_dnc_keeps_the_same_rows_after_a_translation(seed: int, n: int, d: int, shift: float) -> None:
    x = rows(seed, n, d)
    x[0] *= 50  # one clear outlier, so the kept set is not decided by round-off
    common = shift * rows(seed + 1, 1, d)
    f = (n - 1) // 2
    assert torch.equal(DnC(f=f).kept_mask(x + common), DnC(f=f).kept_mask(x))


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.integers(1, 8), st.integers(1, 10), st.lists(st.floats(1e-3, 1e3), min_size=8, max_size=8))
def test_fltrust_ignores_the_norm_of_every_row(seed: int, n: int, d: int, scales: list[float]) -> None:
    x, g0 = rows(seed, n, d), rows(seed + 1, 1, d)[0]
    rule = FLTrust()
    rule.set_reference(g0)
    scaled = x * torch.tensor(scales[:n], dtype=torch.float64).unsqueeze(1)
    assert torch.allclose(rule(scaled), rule(x), atol=1e-9 * float(g0.norm()))


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.integers(2, 7), st.integers(2, 10), st.lists(st.floats(1e-3, 1e3), min_size=7, max_size=7))
def test_cosine_distances_are_symmetric_scale_free_and_bounded(
    seed: int, n: int, d: int, scales: list[float]
) -> None:
    x = rows(seed, n, d)
    dist = cosine_distances(x)
    assert torch.equal(dist, dist.T) and (dist >= 0).all() and (dist <= 2).all()
    scaled = cosine_distances(x * torch.tensor(scales[:n], dtype=torch.float64).unsqueeze(1))
    assert torch.allclose(scaled, dist, atol=1e-12)
