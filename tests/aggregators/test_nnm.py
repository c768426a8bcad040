import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import NNM, get


def brute_nnm(x: torch.Tensor, f: int) -> torch.Tensor:
    n = x.shape[0]
    rows = []
    for i in range(n):
        dists = [
            (sum((x[i, c].item() - x[j, c].item()) ** 2 for c in range(x.shape[1])), j) for j in range(n)
        ]
        nearest = [j for _, j in sorted(dists)[: n - f]]
        rows.append([sum(x[j, c].item() for j in nearest) / (n - f) for c in range(x.shape[1])])
    return torch.tensor(rows, dtype=torch.float64)


def test_byzfl_example() -> None:
    x = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
    expected = torch.tensor([[2.5, 3.5, 4.5], [2.5, 3.5, 4.5], [5.5, 6.5, 7.5]])
    assert torch.allclose(NNM(f=1)(x), expected)


@pytest.mark.parametrize(("n", "f"), [(5, 1), (6, 2), (7, 3)])
def test_matches_brute_force(n: int, f: int) -> None:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    assert torch.allclose(NNM(f)(x), brute_nnm(x, f))


def test_f_zero_gives_mean_everywhere() -> None:
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(NNM(0)(x), x.mean(0).expand(5, 3))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(3, 8),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    bad=st.sampled_from(["nan", "inf", "big"]),
)
def test_non_finite_rows_never_mixed_into_finite_rows(n: int, d: int, seed: int, bad: str) -> None:
    f = (n - 1) // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    value = {"nan": math.nan, "inf": math.inf, "big": 1e38}[bad]
    x[:f] = value
    out = NNM(f)(x)
    assert torch.isfinite(out).all()
    honest = x[f:]
    assert (out[f:] >= honest.min(0).values - 1e-5).all() and (out[f:] <= honest.max(0).values + 1e-5).all()


def test_validation() -> None:
    with pytest.raises(ValueError, match="f must be >= 0"):
        NNM(f=-1)
    with pytest.raises(ValueError, match="f must be an integer"):
        NNM(f=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"n > f, got n=2, f=2"):
        NNM(f=2)(torch.zeros(2, 3))
    assert isinstance(get("NNM", f=1), NNM)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 8), d=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_permutation_equivariant_and_identical_rows(n: int, d: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    f = (n - 1) // 2
    perm = torch.randperm(n, generator=gen)
    assert torch.allclose(NNM(f)(x[perm]), NNM(f)(x)[perm])
    assert torch.allclose(NNM(f)(x[:1].expand(n, d)), x[:1].expand(n, d))
