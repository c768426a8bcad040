"""Fang et al.'s full-knowledge attacks: Krum picks the crafted row; order statistics move against s."""

import math

import pytest
import torch

from robustfl.aggregators import Krum, Median, TrimmedMean
from robustfl.attacks import FangKrum, FangTrimmedMean

H, F, D = 16, 4, 60


def honest(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 * torch.randn(D, generator=g, dtype=torch.float64) + torch.randn(
        H, D, generator=g, dtype=torch.float64
    )


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", range(3))
def test_trimmed_mean_attack_values_lie_beyond_the_honest_extremes(seed: int) -> None:
    x = honest(seed)
    byz = FangTrimmedMean(b=2.0)(x, F, rng=gen(seed))
    s = torch.sign(x.mean(0))
    lo, hi = x.min(0).values, x.max(0).values
    down = s > 0
    assert (byz[:, down] <= lo[down]).all() and (byz[:, ~down] >= hi[~down]).all()
    # within b = 2 times the extreme, on the far side of it
    assert (byz[:, down] >= torch.minimum(lo / 2, 2 * lo)[down]).all()
    assert (byz[:, ~down] <= torch.maximum(hi / 2, 2 * hi)[~down]).all()
    assert not torch.equal(byz[0], byz[1])  # rows are drawn independently


@pytest.mark.parametrize("rule", [Median(), TrimmedMean(f=F)])
def test_every_coordinate_of_median_and_trimmed_mean_moves_against_s(rule) -> None:
    x = honest(1)
    s = torch.sign(x.mean(0))
    shift = rule(torch.cat([x, FangTrimmedMean()(x, F, rng=gen())])) - rule(x)
    assert (shift * s <= 0).all() and float((shift * s).sum()) < 0


@pytest.mark.parametrize("seed", range(3))
def test_krum_selects_the_crafted_row(seed: int) -> None:
    x = honest(seed)
    attack = FangKrum()
    byz = attack(x, F)
    s = torch.sign(x.mean(0))
    lam = -float(byz[0] @ s) / D
    assert lam > attack.eps and torch.allclose(byz, (-lam * s).expand(F, -1))
    assert torch.equal(Krum(f=F)(torch.cat([x, byz])), byz[0])
    assert lam <= attack.lambda_bound(x, F) * (1 + 1e-12)


def test_lambda_bound_is_the_papers_formula() -> None:
    x = honest(0)
    n = H + F
    dist = torch.cdist(x, x)
    near = dist.sort(1).values[:, 1 : n - F - 2 + 1].sum(1)  # n - f - 2 nearest other honest rows
    want = float(near.min()) / ((n - 2 * F - 1) * math.sqrt(D)) + float(x.norm(dim=1).max()) / math.sqrt(D)
    assert FangKrum().lambda_bound(x, F) == pytest.approx(want, rel=1e-9)


def test_validation() -> None:
    with pytest.raises(ValueError, match="b must be > 1"):
        FangTrimmedMean(b=1.0)
    with pytest.raises(ValueError, match=r"Krum, which needs n > 2f: got n = h \+ f = 6, f=3"):
        FangKrum()(torch.randn(3, 4), 3)
    x = honest(2)
    assert torch.equal(FangTrimmedMean()(x, 2, rng=gen(4)), FangTrimmedMean()(x, 2, rng=gen(4)))
