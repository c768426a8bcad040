import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import SMEA


def brute_smea(x: torch.Tensor, f: int) -> torch.Tensor:
    n = x.shape[0]
    best, best_val = None, math.inf
    for subset in itertools.combinations(range(n), n - f):
        rows = x[list(subset)].numpy()
        centred = rows - rows.mean(axis=0)
        top = float(np.linalg.eigvalsh(centred.T @ centred)[-1])
        if top < best_val:
            best, best_val = subset, top
    assert best is not None
    return x[list(best)].mean(0)


def test_hand_example() -> None:
    # four points on a short segment and one far point: dropping the far one minimises the spread
    x = torch.tensor([[0.0, 0], [1, 0], [2, 0], [3, 0], [0, 9]])
    assert torch.allclose(SMEA(f=1)(x), torch.tensor([1.5, 0.0]))


@pytest.mark.parametrize(("n", "f", "d"), [(3, 1, 2), (7, 2, 5), (9, 4, 3), (6, 1, 12)])
def test_matches_brute_force(n: int, f: int, d: int) -> None:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n + d), dtype=torch.float64)
    assert torch.allclose(SMEA(f)(x), brute_smea(x, f))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(3, 8),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    bad=st.sampled_from([1e6, -1e6, math.nan, math.inf, 1e38]),
)
def test_bad_rows_are_never_averaged(n: int, d: int, seed: int, bad: float) -> None:
    # the stated distance: zero outside the honest rows' bounding box (a bad row is never selected)
    f = (n - 1) // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    x[:f] = bad
    out = SMEA(f)(x)
    honest = x[f:]
    assert (out >= honest.min(0).values - 1e-5).all() and (out <= honest.max(0).values + 1e-5).all()


def test_validation_and_refusal() -> None:
    with pytest.raises(ValueError, match=r"n > 2f, got n=5, f=3"):
        SMEA(f=3)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"comb\(n, n-f\) = 488,526,937,079,580 subsets for n=64, f=16"):
        SMEA(f=16)(torch.zeros(64, 2))
