import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import Meamed


def brute_meamed(x: torch.Tensor, f: int) -> torch.Tensor:
    n, d = x.shape
    out = []
    for c in range(d):
        col = sorted(x[:, c].tolist())
        med = col[n // 2] if n % 2 else (col[n // 2 - 1] + col[n // 2]) / 2
        nearest = sorted(col, key=lambda v: abs(v - med))[: n - f]
        out.append(sum(nearest) / (n - f))
    return torch.tensor(out, dtype=torch.float64)


def test_hand_example() -> None:
    # column 0: median 3, nearest 3 of {1,2,3,4,100} -> {3,2,4} (mean 3)
    x = torch.tensor([[1.0, 0], [2, 2], [3, 3], [4, 10], [100, -50]])
    # column 1 sorted: -50, 0, 2, 3, 10; median 2; nearest 3: 2, 3, 0 -> 5/3
    assert torch.allclose(Meamed(f=2)(x), torch.tensor([3.0, 5 / 3]))


@pytest.mark.parametrize(("n", "f"), [(3, 1), (6, 2), (9, 4), (8, 1), (4, 0)])
def test_matches_brute_force(n: int, f: int) -> None:
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    assert torch.allclose(Meamed(f)(x), brute_meamed(x, f))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(3, 9), d=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_permutation_invariant_and_identical_rows(n: int, d: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    f = (n - 1) // 2
    perm = torch.randperm(n, generator=gen)
    assert torch.allclose(Meamed(f)(x), Meamed(f)(x[perm]))
    assert torch.allclose(Meamed(f)(x[:1].expand(n, d)), x[0])


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(3, 9),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    bad=st.sampled_from([1e6, -1e6, math.nan, math.inf, 1e38]),
)
def test_bad_rows_stay_inside_honest_box(n: int, d: int, seed: int, bad: float) -> None:
    f = (n - 1) // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    x[:f] = bad
    out = Meamed(f)(x)
    assert torch.isfinite(out).all()
    honest = x[f:]
    assert (out >= honest.min(0).values - 1e-5).all() and (out <= honest.max(0).values + 1e-5).all()


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"n > 2f, got n=4, f=2"):
        Meamed(f=2)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="shape"):
        Meamed(f=0)(torch.zeros(3))
