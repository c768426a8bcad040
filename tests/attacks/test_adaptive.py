"""The adaptive scale attack: the line search of the optimised ALIE/IPM over any direction."""

import pytest
import torch

from robustfl.aggregators import DnC, Median, TrimmedMean
from robustfl.attacks import AdaptiveScale, OptimalALIE
from robustfl.attacks.min_max import perturbation


def honest(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 + torch.randn(12, 30, generator=g, dtype=torch.float64)


def damage(rule, x: torch.Tensor, byz: torch.Tensor) -> float:
    return float((rule(torch.cat([x, byz])) - x.mean(0)).norm())


def test_alie_direction_reproduces_the_optimised_alie() -> None:
    x = honest()
    ours = AdaptiveScale("alie", agg=Median())
    assert ours.best_tau(x, 3) == OptimalALIE(agg=Median()).best_tau(x, 3)
    assert torch.allclose(ours(x, 3), OptimalALIE(agg=Median())(x, 3))


@pytest.mark.parametrize("direction", ["unit-vec", "std", "sign", "ipm"])
def test_the_chosen_scale_does_at_least_the_damage_of_the_probes(direction: str) -> None:
    x = honest(1)
    rule = TrimmedMean(f=3)
    attack = AdaptiveScale(direction, agg=rule)  # type: ignore[arg-type]
    byz = attack(x, 3)
    tau = attack.best_tau(x, 3)
    p = attack.direction_vector(x)
    assert torch.allclose(byz, (x.mean(0) + tau * p).expand(3, -1))
    best = damage(rule, x, byz)
    for probe in (0.0, 10.0, 30.0):  # the search's first probes (start 0, step 10 doubling)
        assert best >= damage(rule, x, (x.mean(0) + probe * p).expand(3, -1)) - 1e-12


def test_directions_and_stateful_rules_are_probed_through_copies() -> None:
    x = honest(2)
    assert torch.allclose(AdaptiveScale("std").direction_vector(x), perturbation(x, "std"))
    assert torch.allclose(AdaptiveScale("ipm").direction_vector(x), -x.mean(0))
    rule = DnC(f=3, sub_dim=10, seed=1)
    AdaptiveScale(agg=rule)(x, 3)
    fresh = DnC(f=3, sub_dim=10, seed=1)
    assert torch.equal(rule(x), fresh(x))  # the search did not advance the rule's generator
    with pytest.raises(ValueError, match="direction must be one of"):
        AdaptiveScale("up")  # type: ignore[arg-type]
