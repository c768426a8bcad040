import itertools
import math

import pytest
import torch

from robustfl.aggregators import MDA


def brute_mda(x: torch.Tensor, f: int) -> torch.Tensor:
    n = x.shape[0]
    rows = x.tolist()
    best, best_key = None, (math.inf, math.inf)
    for subset in itertools.combinations(range(n), n - f):
        diam = max(math.dist(rows[i], rows[j]) for i in subset for j in subset)
        spread = sum(math.dist(rows[i], rows[j]) ** 2 for i in subset for j in subset)
        if (diam, spread) < best_key:
            best, best_key = subset, (diam, spread)
    assert best is not None
    return x[list(best)].mean(0)


def test_hand_example() -> None:
    x = torch.tensor([[0.0, 0], [1, 0], [0, 1], [5, 5], [1, 1]])
    # the unit square {0, 1, 2, 4} has diameter sqrt(2); any subset with (5, 5) is wider
    assert torch.allclose(MDA(f=1)(x), torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(("n", "f"), [(3, 1), (7, 2), (9, 4), (8, 0)])
def test_matches_brute_force(n: int, f: int) -> None:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    assert torch.allclose(MDA(f)(x), brute_mda(x, f))


def test_diameter_ties_go_to_the_tighter_subset() -> None:
    # n=5, f=2: {0, 1, 2} (first in order) and {1, 3, 4} both have diameter 2; the collinear
    # {1, 3, 4} has the smaller sum of squared distances (12 < 16), whatever the row order
    x = torch.tensor([[3.0, 1], [2, 2], [3, 3], [1, 2], [0, 2]])
    assert torch.allclose(MDA(f=2)(x), torch.tensor([1.0, 2.0]))
    assert torch.allclose(MDA(f=2)(x[[3, 4, 1, 0, 2]]), torch.tensor([1.0, 2.0]))


def test_many_chunks_same_answer() -> None:
    x = torch.randn(14, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(MDA(5)(x), brute_mda(x, 5))  # 2002 subsets, several chunks of k*k = 81


def test_validation_and_refusal() -> None:
    with pytest.raises(ValueError, match=r"n > 2f, got n=4, f=2"):
        MDA(f=2)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="max_subsets must be >= 1"):
        MDA(f=1, max_subsets=0)
    with pytest.raises(ValueError, match=r"comb\(n, n-f\) = 10,518,300 subsets for n=32, f=8.*max_subsets"):
        MDA(f=8)(torch.zeros(32, 2))
    with pytest.raises(ValueError, match=r"= 10 subsets .* max_subsets=9"):
        MDA(f=2, max_subsets=9)(torch.zeros(5, 2))
