"""Clipped clustering: clip to the median of all norms seen, keep the larger cosine cluster."""

import pytest
import torch

from robustfl.aggregators import ClippedClustering
from robustfl.aggregators.clustering import larger_cluster

H, F, D = 11, 4, 300


def updates(seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, D, generator=g, dtype=torch.float64)
    honest = a + 0.8 * torch.randn(H, D, generator=g, dtype=torch.float64)
    byz = 50 * (b + 0.1 * torch.randn(F, D, generator=g, dtype=torch.float64))  # another direction, huge
    return scale * torch.cat([honest, byz])


def clip(rows: torch.Tensor, tau: float) -> torch.Tensor:
    return rows * torch.clamp(tau / rows.norm(dim=1, keepdim=True), max=1.0)


@pytest.mark.parametrize("seed", range(3))
def test_keeps_the_honest_cluster_clipped_to_the_median_norm(seed: int) -> None:
    x = updates(seed)
    rule = ClippedClustering()
    out = rule(x)
    tau = float(x.norm(dim=1).median())
    assert rule.threshold == pytest.approx(tau)
    assert torch.allclose(out, clip(x[:H], tau).mean(0))


def test_threshold_is_the_median_of_the_norm_history_and_is_state() -> None:
    x1, x2 = updates(0), updates(1, scale=3.0)
    rule = ClippedClustering()
    rule(x1)
    out = rule(x2)
    tau = float(torch.cat([x1.norm(dim=1), x2.norm(dim=1)]).quantile(0.5))  # 30 norms: mean of the middle two
    assert rule.threshold == pytest.approx(tau)
    assert torch.allclose(out, clip(x2[:H], tau).mean(0))
    other = ClippedClustering()
    other.load_state_dict(rule.state_dict())
    assert torch.equal(other(x1), rule(x1))
    rule.reset()
    assert rule.threshold is None and torch.equal(rule(x1), ClippedClustering()(x1))
    assert ClippedClustering(max_tau=1.0)(x1).norm() <= 1.0 + 1e-12
    with pytest.raises(ValueError, match="norm_history"):
        rule.load_state_dict({})


def test_model_weights_in_float32_cluster_as_in_float64() -> None:
    x = updates(2)
    common = 1e4 * torch.randn(D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    w = (x + common).float()
    # clipping is inactive on weights (all norms ~ the common part); the Byzantine rows still split off
    out = ClippedClustering(max_tau=1e9)(w).double()
    want = ClippedClustering(max_tau=1e9)(w.double())
    assert torch.allclose(out, want, rtol=1e-6)
    assert float((want - (x[:H] + common).mean(0)).norm()) < float(x[:H].std(0).norm())


def test_larger_cluster_ties_and_small_inputs() -> None:
    dist = torch.tensor([[0, 0.1, 1, 1], [0.1, 0, 1, 1], [1, 1, 0, 0.1], [1, 1, 0.1, 0]], dtype=torch.float64)
    assert larger_cluster(dist).tolist() == [0, 1]
    assert larger_cluster(dist[[2, 3, 0, 1]][:, [2, 3, 0, 1]]).tolist() == [0, 1]
    assert larger_cluster(torch.zeros(1, 1)).tolist() == [0]
    with pytest.raises(ValueError, match="linkage must be"):
        ClippedClustering(linkage="ward")  # type: ignore[arg-type]
    x = updates(0)
    x[0] = float("nan")
    assert torch.isfinite(ClippedClustering()(x)).all()
