import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import MoNNA


def brute_monna(x: torch.Tensor, f: int, idx: int) -> torch.Tensor:
    n = x.shape[0]
    dists = [
        (sum((a - b) ** 2 for a, b in zip(x[j].tolist(), x[idx].tolist(), strict=True)), j) for j in range(n)
    ]
    nearest = [j for _, j in sorted(dists)[: n - f]]
    return torch.stack([x[j] for j in nearest]).sum(0) / (n - f)


def test_hand_example() -> None:
    x = torch.tensor([[0.0, 0], [1, 0], [0, 2], [10, 10], [-9, 3]])
    # nearest 3 to row 0: rows 0, 1, 2
    assert torch.allclose(MoNNA(f=2, idx=0)(x), torch.tensor([1 / 3, 2 / 3]))
    # nearest 3 to row 3 (10,10): itself (0), row 2 (100+64), row 1 (81+100)
    assert torch.allclose(MoNNA(f=2, idx=3)(x), torch.tensor([11 / 3, 12 / 3]))


@pytest.mark.parametrize(("n", "f", "idx"), [(3, 1, 0), (7, 3, 6), (8, 2, 4)])
def test_matches_brute_force(n: int, f: int, idx: int) -> None:
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    assert torch.allclose(MoNNA(f, idx)(x), brute_monna(x, f, idx))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(3, 9), d=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_permutation_invariant_and_identical_rows(n: int, d: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    f = (n - 1) // 2
    perm = torch.randperm(n, generator=gen)
    # the reference row follows the permutation
    new_idx = int((perm == 0).nonzero())
    assert torch.allclose(MoNNA(f, 0)(x), MoNNA(f, new_idx)(x[perm]))
    assert torch.allclose(MoNNA(f)(x[:1].expand(n, d)), x[0])


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
    x[n - f :] = bad
    out = MoNNA(f, idx=0)(x)
    honest = x[: n - f]
    assert (out >= honest.min(0).values - 1e-5).all() and (out <= honest.max(0).values + 1e-5).all()


def test_non_finite_reference_still_finite() -> None:
    x = torch.randn(7, 3)
    x[0] = math.nan
    x[1] = math.inf
    out = MoNNA(f=2, idx=0)(x)
    assert torch.isfinite(out).all()


def test_validation() -> None:
    with pytest.raises(ValueError, match="idx must be >= 0"):
        MoNNA(f=1, idx=-1)
    with pytest.raises(ValueError, match=r"idx < n .*idx=5, n=5"):
        MoNNA(f=1, idx=5)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"n > 2f, got n=4, f=2"):
        MoNNA(f=2)(torch.zeros(4, 2))
