"""The table test: under every message attack at f = 20% of n, the mean breaks while Median, the
geometric median, Krum and centered clipping stay within the honest messages' spread.

Honest messages imitate gradients whose elements are of order 1e-2 with 5e-4 noise (seed 001 notes
true messages of order 1e-4..1e-2). "Within the honest spread" means the output is no farther from the
honest mean than the farthest honest message; "breaks" means more than 100 times that far.
"""

import math

import pytest
import torch

from robustfl import attacks
from robustfl.aggregators import Average, CenteredClipping, GeometricMedian, Krum, Median

N, F, D = 20, 4, 200
H = N - F

GROSS = ["bit-flip", "additive-gaussian", "large-number", "constant", "gaussian", "inf", "nan"]
SUBTLE = ["sign-flip", "alie", "ipm", "mimic", "pgd", "model-replacement"]


def messages(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mu = 1e-2 * torch.randn(D, generator=torch.Generator().manual_seed(99))
    return mu + 5e-4 * torch.randn(N, D, generator=g)


def radius(honest: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(honest - honest.mean(0), dim=1).max())


def robust_rules(previous: torch.Tensor) -> dict[str, object]:
    # seed 002: the clipping centre is the previous round's aggregate (here: a clean round's mean)
    cc = CenteredClipping(m=previous.mean(0), L=3, tau=radius(previous))
    return {
        "median": Median(),
        "geometric-median": GeometricMedian(nu=1e-5, T=500, tol=1e-7),
        "krum": Krum(f=F),
        "centered-clipping": cc,
    }


def error(rule, honest: torch.Tensor, byz: torch.Tensor) -> float:
    out = rule(torch.cat([honest, byz]))
    dist = float(torch.linalg.vector_norm(out - honest.mean(0)))
    return dist if math.isfinite(dist) else math.inf


@pytest.mark.parametrize("name", GROSS + SUBTLE)
def test_robust_rules_stay_within_the_honest_spread(name: str) -> None:
    grads = messages(1)
    honest, own = grads[:H], grads[H:]
    byz = attacks.get(name)(honest, F, rng=torch.Generator().manual_seed(2), own=own)
    r = radius(honest)
    for rule_name, rule in robust_rules(messages(0)[:H]).items():
        assert error(rule, honest, byz) <= r, f"{rule_name} under {name}"
    if name in GROSS:
        assert error(Average(), honest, byz) > 100 * r
