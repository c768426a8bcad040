import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import AGGREGATORS, Median, TrimmedMean
from robustfl.aggregators.coordinatewise import order_statistics

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


def matrices(min_n: int = 1, max_n: int = 7, max_d: int = 5):
    return st.tuples(st.integers(min_n, max_n), st.integers(1, max_d), st.integers(0, 2**31 - 1)).map(
        lambda t: torch.randn(t[0], t[1], generator=torch.Generator().manual_seed(t[2]), dtype=torch.float64)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_vectors(dtype: torch.dtype) -> None:
    x = X.to(dtype)
    assert torch.equal(Median()(x), torch.tensor([4.0, 5.0, 6.0], dtype=dtype))
    assert torch.equal(TrimmedMean(f=1)(x), torch.tensor([4.0, 5.0, 6.0], dtype=dtype))
    assert Median()(x).dtype == dtype


def test_even_n_median_is_mean_of_the_two_middle_values() -> None:
    x = torch.tensor([[0.0, 10.0], [1.0, -3.0], [5.0, 2.0], [100.0, 2.0]])
    assert torch.equal(Median()(x), torch.tensor([3.0, 2.0]))


def test_trimmed_mean_drops_f_largest_and_smallest_per_coordinate() -> None:
    x = torch.tensor([[0.0, 9.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [50.0, -7.0]])
    assert torch.allclose(TrimmedMean(f=1)(x), torch.tensor([2.0, 2.0]))
    assert torch.allclose(TrimmedMean(f=2)(x), torch.tensor([2.0, 2.0]))
    assert torch.allclose(TrimmedMean(f=0)(x), x.mean(0))


@settings(max_examples=50, deadline=None)
@given(matrices(), st.integers(0, 2**31 - 1))
def test_matches_sort_definition_and_is_permutation_invariant(x: torch.Tensor, seed: int) -> None:
    n = x.shape[0]
    s = x.sort(dim=0).values
    expected = s[(n - 1) // 2 : n // 2 + 1].mean(0)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(Median()(x), expected)
    assert torch.equal(Median()(x[perm]), Median()(x))
    f = (n - 1) // 2
    assert torch.allclose(TrimmedMean(f)(x), s[f : n - f].mean(0))
    assert torch.allclose(TrimmedMean(f)(x[perm]), TrimmedMean(f)(x))


@settings(max_examples=50, deadline=None)
@given(matrices(), st.floats(-100, 100))
def test_translation_equivariance(x: torch.Tensor, shift: float) -> None:
    f = (x.shape[0] - 1) // 2
    assert torch.allclose(Median()(x + shift), Median()(x) + shift, atol=1e-9)
    assert torch.allclose(TrimmedMean(f)(x + shift), TrimmedMean(f)(x) + shift, atol=1e-9)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e38, -1e38, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_rows_keep_output_in_honest_bounding_box(bad: float, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    for n, f in [(5, 2), (8, 3), (9, 1)]:
        honest = torch.randn(n - f, 6, generator=g, dtype=dtype)
        x = torch.cat([torch.full((f, 6), bad, dtype=dtype), honest])
        x = x[torch.randperm(n, generator=g)]
        lo, hi = honest.min(0).values, honest.max(0).values
        for rule in (Median(), TrimmedMean(f)):
            out = rule(x)
            assert torch.isfinite(out).all()
            assert (out >= lo).all() and (out <= hi).all()


def test_mixed_signed_bad_rows() -> None:
    x = torch.tensor([[float("nan")], [-float("inf")], [1.0], [2.0], [3.0]])
    assert torch.equal(Median()(x), torch.tensor([2.0]))
    assert torch.equal(TrimmedMean(2)(x), torch.tensor([2.0]))


def test_identical_rows_give_that_row() -> None:
    row = torch.randn(7)
    x = row.repeat(6, 1)
    assert torch.equal(Median()(x), row)
    assert torch.allclose(TrimmedMean(2)(x), row)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="f must be >= 0"):
        TrimmedMean(f=-1)
    with pytest.raises(ValueError, match="f must be an integer"):
        TrimmedMean(f=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"TrimmedMean needs n > 2f, got n=4, f=2"):
        TrimmedMean(f=2)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="shape"):
        Median()(torch.zeros(3))
    with pytest.raises(ValueError, match="non-empty"):
        Median()(torch.zeros(0, 3))


def test_registered_names() -> None:
    assert isinstance(AGGREGATORS.get("trmean", f=1), TrimmedMean)
    assert isinstance(AGGREGATORS.get("trimmed-mean", f=1), TrimmedMean)
    assert isinstance(AGGREGATORS.get("median"), Median)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.data())
def test_order_statistics_equal_sort(n: int, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(n * 131 + lo), dtype=torch.float64)
    x[0] = x[-1]  # ties
    assert torch.equal(order_statistics(x, lo, hi), x.sort(dim=0).values[lo:hi])


def test_nan_counts_as_plus_infinity() -> None:
    x = torch.tensor([[float("nan"), 1.0], [2.0, float("nan")], [0.0, -1.0], [1.0, 5.0], [3.0, 4.0]])
    assert torch.equal(
        order_statistics(x, 0, 4), torch.tensor([[0.0, -1.0], [1.0, 1.0], [2.0, 4.0], [3.0, 5.0]])
    )
    assert torch.equal(order_statistics(x, 4, 5), torch.tensor([[float("inf"), float("inf")]]))
    big = torch.randn(131, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(order_statistics(big, 5, 9), big.sort(dim=0).values[5:9])
    assert torch.equal(TrimmedMean(60)(big), big.sort(dim=0).values[60:-60].mean(0))


def test_small_inputs_restore_the_thread_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        Median()(torch.randn(9, 40_000))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
