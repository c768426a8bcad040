"""Min-Max and Min-Sum: the largest scale that keeps the Byzantine row inside the honest distances."""

import math

import pytest
import torch

from robustfl.attacks import MinMax, MinSum
from robustfl.attacks.min_max import largest_feasible, perturbation


def honest(seed: int, h: int = 12, d: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 + torch.randn(h, d, generator=g, dtype=torch.float64)


def closed_form_min_max(x: torch.Tensor, p: torch.Tensor) -> float:
    """Smallest over honest rows of the positive root of ||mu + g p - x_i||^2 = max_{i,j} ||x_i - x_j||^2."""
    mu = x.mean(0)
    bound = float(torch.cdist(x, x).max()) ** 2
    roots = []
    for row in x:
        a, b, c = float((mu - row).square().sum()), float((mu - row) @ p), float(p @ p)
        roots.append((-b + math.sqrt(b * b - c * (a - bound))) / c)
    return min(roots)


def closed_form_min_sum(x: torch.Tensor, p: torch.Tensor) -> float:
    mu = x.mean(0)
    sums = torch.cdist(x, x).square().sum(1)
    return math.sqrt((float(sums.max()) - float((x - mu).square().sum())) / (x.shape[0] * float(p @ p)))


@pytest.mark.parametrize("direction", ["unit-vec", "std", "sign"])
@pytest.mark.parametrize("seed", range(2))
def test_gamma_is_the_constraints_boundary(direction: str, seed: int) -> None:
    x = honest(seed)
    p = perturbation(x, direction)  # type: ignore[arg-type]
    assert MinMax(direction).gamma(x) == pytest.approx(closed_form_min_max(x, p), rel=1e-4)  # type: ignore[arg-type]
    assert MinSum(direction).gamma(x) == pytest.approx(closed_form_min_sum(x, p), rel=1e-4)  # type: ignore[arg-type]


def test_byzantine_rows_satisfy_the_distance_constraints() -> None:
    x = honest(3)
    byz = MinMax()(x, 3)
    assert torch.equal(byz[0], byz[2])
    max_honest = float(torch.cdist(x, x).max())
    assert float(torch.cdist(byz[:1], x).max()) <= max_honest * (1 + 1e-9)
    assert float(torch.cdist(byz[:1], x).max()) >= max_honest * (1 - 1e-4)  # and it uses the whole budget
    s = MinSum()(x, 2)[0]
    assert float((s - x).square().sum()) <= float(torch.cdist(x, x).square().sum(1).max()) * (1 + 1e-9)


def test_perturbation_directions() -> None:
    x = torch.tensor([[1.0, -2.0, 0.0], [3.0, -4.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(
        perturbation(x, "unit-vec").float(), -torch.tensor([2.0, -3.0, 0.0]) / math.sqrt(13)
    )
    assert torch.allclose(perturbation(x, "std").float(), -torch.tensor([math.sqrt(2), math.sqrt(2), 0.0]))
    assert torch.equal(perturbation(x, "sign"), torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64))


def test_translation_equivariant_on_model_weights() -> None:
    x = honest(4)
    common = 1e4 * torch.randn(40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert MinMax("std").gamma(x + common) == pytest.approx(MinMax("std").gamma(x), rel=1e-6)
    out = MinSum("std")((x + common).float(), 1)[0].double() - common
    assert torch.allclose(out, MinSum("std")(x, 1)[0], atol=1e-2)  # float32 resolution of 1e4


def test_binary_search_and_degenerate_inputs() -> None:
    assert largest_feasible(lambda g: g <= 123.456) == pytest.approx(123.456, rel=1e-5)  # beyond 2 * start
    assert largest_feasible(lambda g: g <= 0.001, start=10.0) == pytest.approx(0.001, rel=1e-5)
    assert largest_feasible(lambda g: g == 0) == 0.0  # only gamma = 0 is feasible: the search still ends
    one = torch.tensor([[1.0, 2.0]])  # a single honest row: no room at all
    assert torch.equal(MinMax()(one, 2), one.expand(2, -1)) and torch.equal(MinSum()(one, 1), one)
    same = torch.ones(4, 3)
    assert MinMax("std").gamma(same) == 0.0 and torch.equal(MinMax("std")(same, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="direction must be one of"):
        MinMax("random")  # type: ignore[arg-type]
