import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import AGGREGATORS, GeometricMedian
from robustfl.aggregators._distances import distances_to_point, row_sq_norms

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


def weiszfeld_reference(x: torch.Tensor, nu: float, T: int) -> torch.Tensor:
    z = torch.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(T):
        beta = (x - z).norm(dim=1).clamp(min=nu)
        z = (x / beta[:, None]).sum(0) / (1 / beta).sum()
    return z


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_vector_matches_byzfl(dtype: torch.dtype) -> None:
    out = GeometricMedian.byzfl()(X.to(dtype))
    assert torch.equal(out, GeometricMedian(nu=0.1, T=3, tol=None, init="zero")(X.to(dtype)))
    expected = torch.tensor([3.78788764, 4.78788764, 5.78788764], dtype=dtype)
    assert out.dtype == dtype
    assert torch.allclose(out, expected, atol=1e-6 if dtype == torch.float32 else 1e-8)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(0, 2**31 - 1), st.floats(-50, 50))
def test_matches_plain_weiszfeld_and_symmetries(n: int, d: int, seed: int, shift: float) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 3
    gm = GeometricMedian(nu=1e-6, T=100, tol=None, init="zero")
    out = gm(x)
    assert torch.allclose(out, weiszfeld_reference(x, 1e-6, 100), atol=1e-8)
    perm = torch.randperm(n, generator=g)
    assert torch.allclose(gm(x[perm]), out, atol=1e-8)
    # converged GM is translation equivariant (the iteration's start at 0 is not, so compare optima)
    obj = lambda z, pts: (pts - z).norm(dim=1).sum()  # noqa: E731
    shifted = gm(x + shift)
    assert obj(shifted - shift, x) <= obj(out, x) + 1e-4 * (1 + obj(out, x))


def test_identical_rows_give_that_row() -> None:
    row = torch.randn(5, dtype=torch.float64)
    assert torch.allclose(GeometricMedian(T=5)(row.repeat(4, 1)), row)


def test_tol_stops_early_but_agrees() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 20, generator=g, dtype=torch.float64) + 5
    full = GeometricMedian(nu=1e-5, T=500)(x)
    early = GeometricMedian(nu=1e-5, T=500, tol=1e-10)(x)
    assert torch.allclose(full, early, atol=1e-7)
    one = GeometricMedian(nu=1e-5, T=1, tol=1e-10)(x)
    assert not torch.allclose(one, full, atol=1e-3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e38, -1e38, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_rows_stay_near_honest_median(bad: float, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    honest = torch.randn(7, 10, generator=g, dtype=dtype)
    x = torch.cat([honest[:3], torch.full((3, 10), bad, dtype=dtype), honest[3:]])
    out = GeometricMedian(nu=1e-5, T=100)(x)
    assert torch.isfinite(out).all()
    target = GeometricMedian(nu=1e-5, T=100)(honest)
    # breakdown-point bound: a minority can move the GM by at most a multiple of the honest spread
    spread = (honest - target).norm(dim=1).max()
    assert (out - target).norm() <= 2 * spread


def test_all_rows_bad_returns_start_point() -> None:
    x = torch.full((3, 4), float("nan"))
    assert torch.equal(GeometricMedian()(x), torch.zeros(4))
    assert torch.equal(GeometricMedian.byzfl()(x), torch.zeros(4))


def test_defaults_converge_from_a_robust_start_where_byzfl_settings_do_not() -> None:
    # issue 11: nine honest rows at 20 and one all-zero row (a crashed worker)
    x = torch.cat([torch.full((9, 50), 20.0), torch.zeros(1, 50)])
    assert torch.allclose(GeometricMedian()(x), torch.full((50,), 20.0), atol=1e-4)
    byzfl = GeometricMedian.byzfl()(x)  # three steps from 0: documented as not a geometric median
    assert float(byzfl.max()) < 10.0


@settings(max_examples=10, deadline=None)
@given(st.integers(3, 9), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_defaults_reach_the_optimum(n: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 3
    obj = lambda z: float((x - z).norm(dim=1).sum())  # noqa: E731
    best = obj(weiszfeld_reference(x, 1e-9, 400))
    assert obj(GeometricMedian()(x)) <= best + 1e-4 * (1 + best)


def test_tol_is_relative_to_the_spread_not_the_norm() -> None:
    # model weights: a huge common part W; the stopping rule must not fire after one step
    g = torch.Generator().manual_seed(3)
    e = torch.randn(9, 20, generator=g, dtype=torch.float64)
    e[:3] += 4.0
    w = torch.randn(20, generator=g, dtype=torch.float64) * 1e6
    ref = GeometricMedian(tol=None, T=500)(e)
    out = GeometricMedian(tol=1e-6, init="zero", T=500)(e + w) - w
    assert torch.allclose(out, ref, atol=1e-4)


def test_init_validation() -> None:
    with pytest.raises(ValueError, match="init must be 'median'"):
        GeometricMedian(init="mean")  # type: ignore[arg-type]


def test_distances_to_point_recomputes_cancelling_rows() -> None:
    x = torch.full((3, 1000), 1000.0)
    x[1] += 1e-3
    z = x[0].clone()
    d = distances_to_point(x, row_sq_norms(x), z)
    exact = (x.double() - z.double()).norm(dim=1)
    assert torch.allclose(d.double(), exact, rtol=1e-3, atol=1e-6)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="nu must be > 0"):
        GeometricMedian(nu=0.0)
    with pytest.raises(ValueError, match="T must be >= 1"):
        GeometricMedian(T=0)
    with pytest.raises(ValueError, match="tol must be > 0"):
        GeometricMedian(tol=-1.0)
    with pytest.raises(ValueError, match="floating point"):
        GeometricMedian()(torch.ones(3, 2, dtype=torch.int64))
    assert isinstance(AGGREGATORS.get("rfa", nu=1e-5, T=500), GeometricMedian)
