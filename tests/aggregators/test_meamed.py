import pytest
import torch

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


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"n > 2f, got n=4, f=2"):
        Meamed(f=2)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="shape"):
        Meamed(f=0)(torch.zeros(3))
