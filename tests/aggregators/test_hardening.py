"""Issue 11, aggregators: overflowing rows, half precision, inputs that require grad."""

from __future__ import annotations

import pytest
import torch

from robustfl.aggregators import AGGREGATORS, CAF, BlockGeometricMedian, CenteredClipping, GeometricMedian
from robustfl.aggregators._distances import pairwise_sq_distances_and_usable
from robustfl.bench.aggregators import build, rule_classes


def honest(n: int = 9, d: int = 6, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=dtype)


@pytest.mark.parametrize(
    "bad", [1e200, -1e200, torch.finfo(torch.float64).max, -torch.finfo(torch.float64).max]
)
@pytest.mark.parametrize("where", [0, 4, 9])
def test_caf_row_whose_distances_overflow_is_bad_never_near(bad: float, where: int) -> None:
    x = honest(10)
    x[where] = bad
    out = CAF(f=1)(x)
    rest = torch.cat([x[:where], x[where + 1 :]])
    assert torch.isfinite(out).all()
    assert (out >= rest.min(0).values - 1e-9).all() and (out <= rest.max(0).values + 1e-9).all()
    _, usable = pairwise_sq_distances_and_usable(x)
    assert not bool(usable[where]) and int(usable.sum()) == 9


def test_moderately_huge_rows_stay_usable() -> None:
    x = honest(10)
    x[3] = 1e150  # squared distances ~1e300 * d: finite in float64, so the row is far, not unusable
    dist, usable = pairwise_sq_distances_and_usable(x)
    assert bool(usable.all()) and bool(torch.isfinite(dist).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "rule",
    [
        lambda: GeometricMedian(),
        lambda: GeometricMedian.byzfl(),
        lambda: CenteredClipping(tau=1e4),
        lambda: BlockGeometricMedian(ratio=0.5, T=20),
    ],
)
def test_half_precision_rows_above_norm_256(dtype: torch.dtype, rule: object) -> None:
    # float16 squares overflow above 65504, i.e. norms above 256: today every row was dropped
    x = (honest(9, 64, torch.float32) + 100.0).to(dtype)
    out = rule()  # type: ignore[operator]
    got = out(x)
    assert got.dtype == dtype and got.shape == (64,)
    ref = rule()(x.float())  # type: ignore[operator]
    assert torch.allclose(got.float(), ref.to(dtype).float())
    assert float(got.float().abs().max()) > 50.0  # BGMD is zero off its block


def test_stateful_rules_keep_float32_memory_for_half_inputs() -> None:
    x = (honest(9, 64, torch.float32) + 100.0).half()
    cc, bgmd = CenteredClipping(tau=1e4), BlockGeometricMedian(ratio=0.5)
    cc(x)
    bgmd(x)
    assert cc.center is not None and cc.center.dtype == torch.float32
    assert bgmd.memory is not None and bgmd.memory.dtype == torch.float32


@pytest.mark.parametrize("cls", rule_classes(), ids=lambda c: c.__name__)
def test_inputs_that_require_grad(cls: type) -> None:
    x = honest(12, 8).requires_grad_()
    rule, why = build(cls, 12)
    assert rule is not None, why
    if getattr(rule, "needs_reference", False):  # FLTrust: the server's own update
        rule.set_reference(x.detach().mean(0))
    out = rule(x)
    assert torch.isfinite(out).all()
    if out.requires_grad:
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
    for state in ("memory", "center"):
        kept = getattr(rule, state, None)
        assert kept is None or not kept.requires_grad


def test_bgmd_and_caf_are_differentiable_in_x() -> None:
    x = honest(12, 8).requires_grad_()
    for rule in (BlockGeometricMedian(ratio=0.5), CAF(f=2), AGGREGATORS.get("geometric-median")):
        x.grad = None
        rule(x).sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0
