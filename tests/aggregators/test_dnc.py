"""DnC: spectral filtering removes a consistent shift that distance-based rules accept."""

import pytest
import torch

from robustfl.aggregators import DnC, Krum

H, F, D = 24, 6, 100


def shifted(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """24 honest N(0, I) rows and 6 Byzantine rows at the honest mean plus 9 along one unit vector:
    closer to the mean than any honest row (~10), so Krum accepts them, but all on one direction."""
    g = torch.Generator().manual_seed(seed)
    honest = torch.randn(H, D, generator=g, dtype=torch.float64)
    u = torch.randn(D, generator=g, dtype=torch.float64)
    byz = (honest.mean(0) + 9 * u / u.norm()).expand(F, -1)
    return honest, torch.cat([honest, byz])


@pytest.mark.parametrize("seed", range(5))
def test_removes_the_byzantine_direction_that_krum_accepts(seed: int) -> None:
    honest, x = shifted(seed)
    assert torch.equal(DnC(f=F).kept_mask(x), torch.arange(H + F) < H)
    assert torch.allclose(DnC(f=F)(x), honest.mean(0))
    assert torch.equal(Krum(f=F)(x), x[H])  # the Byzantine row has the best Krum score


def test_same_rows_on_model_weights() -> None:
    honest, x = shifted(0)
    common = 1e3 * torch.randn(D, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    grads, weights = x.float(), (x + common).float()  # float32 rows sharing a large common part
    assert torch.equal(DnC(f=F).kept_mask(weights), DnC(f=F).kept_mask(grads))
    out = DnC(f=F)(weights).double() - common
    assert float((out - honest.mean(0)).norm()) < 1e-3 * float(honest.std(0).norm())


def test_random_coordinate_subsets_come_from_the_seed() -> None:
    _, x = shifted(1)
    a, b = DnC(f=F, sub_dim=20, seed=3), DnC(f=F, sub_dim=20, seed=3)
    first = a(x)
    assert torch.equal(first, b(x))
    a.reset()
    assert torch.equal(a(x), first)
    assert not a.kept_mask(x)[H:].any()  # 20 random coordinates still expose the Byzantine rows


def test_non_finite_rows_are_never_kept_and_the_fallback_is_nonempty() -> None:
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(2))
    x[3] = float("nan")
    out = DnC(f=1)(x)
    assert torch.isfinite(out).all() and not DnC(f=1).kept_mask(x)[3]
    # 3 rows, one removed per iteration on 1 random coordinate: the kept sets may not intersect
    y = torch.eye(3) * 10
    mask = DnC(f=1, sub_dim=1, num_iters=30).kept_mask(y)
    assert 1 <= int(mask.sum()) <= 3


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"DnC needs n > 2f, got n=6, f=3"):
        DnC(f=3)(torch.zeros(6, 2))
    with pytest.raises(ValueError, match="sub_dim must be >= 1"):
        DnC(sub_dim=0)
    with pytest.raises(ValueError, match="filter_frac must be >= 0"):
        DnC(filter_frac=-1)
