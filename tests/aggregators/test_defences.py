"""NDC and weak DP: clipping radius, aggregation, seeded noise, registration from both import orders."""

import subprocess
import sys

import pytest
import torch

from robustfl.aggregators import AGGREGATORS, Average, get
from robustfl.aggregators.defences import NormDifferenceClipping, WeakDP, clip_rows


def test_clip_rows_projects_long_rows_and_keeps_short_ones() -> None:
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4], [float("nan"), 1.0]])
    out = clip_rows(x, 2.0)
    assert torch.allclose(out[0], torch.tensor([1.2, 1.6]))
    assert torch.equal(out[1], x[1])
    assert torch.equal(out[2], torch.zeros(2))


def test_ndc_is_mean_of_clipped_updates() -> None:
    x = torch.tensor([[30.0, 40.0], [0.0, 1.0], [1.0, 0.0]])
    out = NormDifferenceClipping()(x)
    assert torch.allclose(out, torch.tensor([(1.2 + 1.0) / 3, (1.6 + 1.0) / 3]))
    assert torch.linalg.vector_norm(out) <= 2.0


def test_ndc_inner_rule_by_name_or_object() -> None:
    assert isinstance(NormDifferenceClipping(inner="mean").inner, Average)
    with pytest.raises(ValueError, match="unknown aggregator"):
        NormDifferenceClipping(inner="nope")
    with pytest.raises(ValueError, match="threshold"):
        NormDifferenceClipping(threshold=0.0)


def test_weak_dp_adds_seeded_gaussian_noise() -> None:
    x = torch.zeros(5, 40000)
    dp = WeakDP(sigma=0.005, seed=3)
    a = dp(x)
    assert a.std().item() == pytest.approx(0.005, rel=0.02)
    b = dp(x)
    assert not torch.equal(a, b)  # a fresh draw each round
    dp.reset()
    assert torch.equal(dp(x), a)
    assert torch.equal(WeakDP(sigma=0.005, seed=3)(x), a)
    assert torch.equal(WeakDP(sigma=0.0)(torch.ones(3, 4)), NormDifferenceClipping()(torch.ones(3, 4)))


def test_registered_as_aggregators() -> None:
    assert "ndc" in AGGREGATORS and "weak-dp" in AGGREGATORS
    assert get("weak-dp", sigma=0.01).sigma == 0.01


@pytest.mark.parametrize("first", ["robustfl.attacks", "robustfl.aggregators.defences"])
def test_import_order_does_not_matter(first: str) -> None:
    code = f"import {first}; from robustfl.aggregators import get; get('ndc'); import robustfl.attacks"
    subprocess.run([sys.executable, "-c", code], check=True)
