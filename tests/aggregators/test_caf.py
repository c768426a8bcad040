import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import CAF


def direct_caf(x: torch.Tensor, f: int) -> torch.Tensor:
    """The documented filter computed in d-space with an explicit d x d covariance."""
    n = x.shape[0]
    c = torch.ones(n, dtype=torch.float64)
    best_mu, best_val = x.mean(0), math.inf
    while c.sum() > n - 2 * f:
        mu = (c[:, None] * x).sum(0) / c.sum()
        diffs = x - mu
        cov = (c[:, None] * diffs).T @ diffs / c.sum()
        vals, vecs = torch.linalg.eigh(cov)
        if vals[-1] < best_val:
            best_mu, best_val = mu, float(vals[-1])
        tau = (diffs @ vecs[:, -1]) ** 2
        c = (c * (1 - tau / tau[c > 0].max())).clamp(min=0)
    return best_mu


def test_hand_example_drops_the_outlier() -> None:
    x = torch.tensor([[0.0, 0], [2, 0], [0, 2], [2, 2], [100, 100]])
    # round 1: the top direction points at (100, 100), whose weight drops to 0; the square's corners on
    # that diagonal lose a little weight, so the result is the square's centre up to ~0.5%
    out = CAF(f=1)(x)
    assert torch.allclose(out, direct_caf(x.double(), 1).float())
    assert torch.allclose(out, torch.tensor([1.0, 1.0]), atol=0.01)


@pytest.mark.parametrize(("n", "f", "d"), [(5, 1, 3), (8, 3, 4), (11, 5, 2), (7, 2, 10)])
def test_matches_direct_computation(n: int, f: int, d: int) -> None:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n * d), dtype=torch.float64)
    x[0] += 4.0
    assert torch.allclose(CAF(f)(x), direct_caf(x, f), atol=1e-9)


def test_f_zero_is_the_mean() -> None:
    x = torch.randn(6, 3, dtype=torch.float64)
    assert torch.allclose(CAF(0)(x), x.mean(0))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(3, 9),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    bad=st.sampled_from([1e6, -1e6, math.nan, math.inf, 1e38]),
)
def test_bad_rows_get_zero_weight(n: int, d: int, seed: int, bad: float) -> None:
    # the stated distance: the output is a weighted mean of honest rows, inside their bounding box
    f = (n - 1) // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    x[:f] = bad
    out = CAF(f)(x)
    honest = x[f:]
    assert (out >= honest.min(0).values - 1e-4).all() and (out <= honest.max(0).values + 1e-4).all()


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"n > 2f, got n=6, f=3"):
        CAF(f=3)(torch.zeros(6, 2))
    with pytest.raises(ValueError, match="f must be an integer"):
        CAF(f=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("m", [5, 130, 300])
def test_top_eigenpair_matches_a_full_decomposition(m: int) -> None:
    import numpy as np

    from robustfl.aggregators.caf import top_eigenpair

    rng = np.random.default_rng(m)
    b = rng.standard_normal((m, 40))
    a = b @ b.T
    full_vals, full_vecs = np.linalg.eigh(a)
    for start in (None, rng.standard_normal(m)):
        val, vec = top_eigenpair(a.copy(), start)
        assert val == pytest.approx(full_vals[-1], rel=1e-10)
        assert abs(float(vec @ full_vecs[:, -1])) == pytest.approx(1.0, abs=1e-8)


def test_large_support_uses_lanczos_and_matches_direct_computation() -> None:
    x = torch.randn(140, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x[:20] += 5.0
    assert torch.allclose(CAF(30)(x), direct_caf(x, 30), atol=1e-8)
