"""FLAME: HDBSCAN majority cluster on cosine distances, clipping to the median norm, noise."""

import pytest
import torch

from robustfl.aggregators import FLAME
from robustfl.aggregators.flame import majority_cluster

H, F, D = 12, 5, 500


def updates(seed: int) -> torch.Tensor:
    """Honest updates around a shared direction; ``F`` backdoor updates around another direction."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, D, generator=g, dtype=torch.float64)
    honest = a + 0.7 * torch.randn(H, D, generator=g, dtype=torch.float64)
    byz = 3 * (b + 0.3 * torch.randn(F, D, generator=g, dtype=torch.float64))
    return torch.cat([honest, byz])


def test_majority_cluster_hand_example() -> None:
    pts = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 30.0])
    dist = (pts.unsqueeze(0) - pts.unsqueeze(1)).abs()
    assert majority_cluster(dist).tolist() == [0, 1, 2, 3]  # the first single-linkage group of 4
    assert majority_cluster(dist[:2, :2]).tolist() == [0, 1]


@pytest.mark.parametrize("seed", range(3))
def test_admits_no_backdoor_row_and_clips_to_the_median_norm(seed: int) -> None:
    x = updates(seed)
    mask = FLAME().admitted(x)
    assert not mask[H:].any() and int(mask.sum()) >= (H + F) // 2 + 1
    s = float(x.norm(dim=1).median())
    kept = x[mask]
    want = (kept * torch.clamp(s / kept.norm(dim=1, keepdim=True), max=1.0)).mean(0)
    assert torch.allclose(FLAME(lam=0)(x), want)


def test_noise_has_std_lam_times_median_norm_and_restarts_on_reset() -> None:
    x = updates(0).repeat(1, 40)  # d = 20000 coordinates to measure the noise
    s = float(x.norm(dim=1).median())
    rule = FLAME(lam=0.01, seed=1)
    first = rule(x)
    noise = (first - FLAME(lam=0)(x)) / (0.01 * s)
    assert 0.95 < float(noise.std()) < 1.05 and abs(float(noise.mean())) < 0.05
    assert not torch.equal(rule(x), first)
    rule.reset()
    assert torch.equal(rule(x), first)


def test_model_weights_in_float32_cluster_as_in_float64() -> None:
    # rows sharing a large common part: every cosine distance is ~1e-6, below float32's 1 - cos
    x = updates(1)
    common = 1e3 * torch.randn(D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    weights = (x + common).float()
    mask = FLAME().admitted(weights)
    assert torch.equal(mask, FLAME().admitted(weights.double()))
    assert not mask[H:].any() and int(mask.sum()) >= (H + F) // 2 + 1


def test_non_finite_rows_are_not_admitted() -> None:
    x = updates(2)
    x[0] = float("inf")
    assert not FLAME().admitted(x)[0] and torch.isfinite(FLAME()(x)).all()
    with pytest.raises(ValueError, match="lam must be >= 0"):
        FLAME(lam=-1)
