"""FLTrust: ReLU-clipped cosine trust scores against the server's update, norm-matched rows."""

import pytest
import torch

from robustfl.aggregators import AGGREGATORS, FLTrust, ReferenceRule


def reference(x: torch.Tensor, g0: torch.Tensor) -> torch.Tensor:
    x, g0 = x.double(), g0.double()
    cos = torch.nn.functional.cosine_similarity(x, g0.unsqueeze(0), dim=1)
    ts = cos.clamp(min=0)
    rows = x * (g0.norm() / x.norm(dim=1)).unsqueeze(1)
    return (ts @ rows) / ts.sum()


def data(seed: int, common: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = common * torch.randn(50, generator=g, dtype=torch.float64) + torch.ones(50, dtype=torch.float64)
    x = base + torch.randn(10, 50, generator=g, dtype=torch.float64)
    x[7:] = -5 * x[7:]  # three rows pointing away from the server's update
    g0 = base + torch.randn(50, generator=g, dtype=torch.float64)
    return x, g0


def rule_with(g0: torch.Tensor) -> FLTrust:
    rule = FLTrust()
    rule.set_reference(g0)
    return rule


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_papers_formula(seed: int) -> None:
    x, g0 = data(seed)
    assert torch.allclose(rule_with(g0)(x), reference(x, g0), atol=1e-12)


def test_negative_cosines_get_no_trust_and_norms_are_matched() -> None:
    x, g0 = data(0)
    rule = rule_with(g0)
    ts = rule.trust_scores(x)
    assert (ts[7:] == 0).all() and (ts[:7] > 0).all()
    out = rule(x)
    y = x.clone()
    bad = 1e6 * torch.randn(3, 50, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y[7:] = bad * -torch.sign(bad @ g0).unsqueeze(1)  # whatever distrusted rows hold, they do not count ...
    y[:7] *= torch.tensor([1.0, 100.0, 0.01, 3.0, 1.0, 7.0, 0.5], dtype=torch.float64).unsqueeze(1)
    assert torch.allclose(rule(y), out, atol=1e-12)  # ... and rescaling a trusted row changes nothing
    assert float(out.norm()) <= float(g0.norm()) * (1 + 1e-12)


def test_accurate_on_model_weights() -> None:
    x, g0 = data(1, common=1e3)  # rows sharing a large common part: every cosine is ~1
    out = rule_with(g0.float())(x.float())
    assert torch.allclose(out.double(), reference(x.float(), g0.float()), rtol=1e-5)


def test_all_distrusted_gives_zero_and_reference_is_required() -> None:
    g0 = torch.ones(3)
    assert torch.equal(rule_with(g0)(-torch.ones(4, 3)), torch.zeros(3))
    assert FLTrust.needs_reference and isinstance(FLTrust(), ReferenceRule)
    assert not isinstance(AGGREGATORS.get("average"), ReferenceRule)
    with pytest.raises(ValueError, match=r"call set_reference\(g0\)"):
        FLTrust()(torch.ones(4, 3))
    with pytest.raises(ValueError, match="d=3 but the messages have d=2"):
        rule_with(g0)(torch.ones(4, 2))
    with pytest.raises(ValueError, match="1-D float Tensor"):
        FLTrust().set_reference(torch.ones(2, 2))
    with pytest.raises(ValueError, match="finite"):
        FLTrust().set_reference(torch.tensor([1.0, float("nan")]))
    rule = rule_with(g0)
    rule.reset()
    assert rule.reference is None


def test_non_finite_rows_get_no_trust() -> None:
    x, g0 = data(2)
    y = torch.cat([x[:7], torch.full((1, 50), float("inf"), dtype=torch.float64)])
    assert torch.allclose(rule_with(g0)(y), reference(x[:7], g0), atol=1e-12)
