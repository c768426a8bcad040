"""SignGuard: norm filter, sign-statistics clustering, clipping to the median norm."""

import numpy as np
import pytest
import torch

from robustfl.aggregators import SignGuard
from robustfl.aggregators.signguard import mean_shift

H, F, D = 16, 4, 2000


def gradients(seed: int, common: float = 0.0) -> torch.Tensor:
    """Honest rows with a positive drift (about 69% positive coordinates) and ``F`` sign-flipped
    copies of honest rows (the same norms, about 31% positive)."""
    g = torch.Generator().manual_seed(seed)
    honest = 0.5 + torch.randn(H, D, generator=g, dtype=torch.float64)
    x = torch.cat([honest, -honest[:F]])
    return x + common * torch.randn(D, generator=g, dtype=torch.float64).abs() if common else x


def clipped_mean(rows: torch.Tensor, median: float) -> torch.Tensor:
    norms = rows.norm(dim=1, keepdim=True)
    return (rows * torch.clamp(median / norms, max=1.0)).mean(0)


@pytest.mark.parametrize("seed", range(3))
def test_sign_flipped_rows_fall_outside_the_largest_sign_cluster(seed: int) -> None:
    x = gradients(seed)
    mask, median = SignGuard().selected(x)
    assert torch.equal(mask, torch.arange(H + F) < H)
    assert median == pytest.approx(float(x.norm(dim=1).median()), rel=0.05)
    assert torch.allclose(SignGuard()(x), clipped_mean(x[:H], median))


def test_norm_filter_bounds() -> None:
    x = gradients(0)[:H].clone()
    x[0] *= 5.0  # beyond upper = 3 times the median norm
    x[1] *= 0.05  # below lower = 0.1
    x[2] = float("nan")
    one_cluster = SignGuard(bandwidth=1.0)  # wider than any sign-statistics distance: S2 = all finite rows
    assert one_cluster.selected(x)[0].tolist() == [False, False, False] + [True] * (H - 3)
    assert SignGuard(upper=10.0, bandwidth=1.0).selected(x)[0][:3].tolist() == [True, False, False]


def test_model_weights_scale() -> None:
    # weights: a large positive common part; a Byzantine row sending the negated model is caught
    x = gradients(1, common=100.0)
    x[H:] = -x[H:]
    mask, median = SignGuard().selected(x.float())
    assert torch.equal(mask, torch.arange(H + F) < H)
    assert torch.allclose(SignGuard()(x.float()).double(), clipped_mean(x[:H], median), rtol=1e-5)


def test_coordinate_draws_come_from_the_seed() -> None:
    x = gradients(2)
    rule = SignGuard(seed=4)
    first = rule(x)
    rule.reset()
    assert torch.equal(rule(x), first)


def test_mean_shift_finds_separated_groups() -> None:
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(0, 0.01, (6, 3)), rng.normal(1, 0.01, (3, 3))])
    labels = mean_shift(pts)
    assert len(set(labels[:6])) == 1 and len(set(labels[6:])) == 1 and labels[0] != labels[6]
    assert (mean_shift(np.ones((4, 3))) == 0).all()  # identical points: one cluster at bandwidth 0


def test_validation() -> None:
    with pytest.raises(ValueError, match="lower must be < upper"):
        SignGuard(lower=3.0, upper=1.0)
    with pytest.raises(ValueError, match=r"coord_frac must lie in \(0, 1\]"):
        SignGuard(coord_frac=2.0)
