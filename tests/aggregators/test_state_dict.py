"""Stateful rules save and restore their memory explicitly (state_dict / load_state_dict), and the
state travels through torch.save / torch.load(weights_only=True) as a checkpoint does."""

import io
from collections.abc import Callable

import pytest
import torch

from robustfl.aggregators import (
    AGGREGATORS,
    BlockGeometricMedian,
    Bucketing,
    CenteredClipping,
    Median,
    Pipeline,
    WeakDP,
)
from robustfl.aggregators.base import Aggregator

STATEFUL: list[Callable[[], Aggregator]] = [
    lambda: BlockGeometricMedian(ratio=0.25, seed=3),
    lambda: Bucketing(s=2, seed=1),
    lambda: CenteredClipping(tau=1.0),
    lambda: WeakDP(threshold=1.0, sigma=0.1, seed=2),
    lambda: Pipeline(Bucketing(s=2, seed=4), CenteredClipping(tau=0.5)),
]


def through_disk(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("make", STATEFUL, ids=lambda m: type(m()).__name__)
def test_restored_rule_continues_identically(make: Callable[[], Aggregator]) -> None:
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randn(6, 8, generator=gen) for _ in range(3)]
    rule = make()
    rule(rows[0])
    snapshot = through_disk(rule.state_dict())
    expected = [rule(rows[1]), rule(rows[2])]
    fresh = make()
    fresh.load_state_dict(snapshot)
    assert all(torch.equal(fresh(r), e) for r, e in zip(rows[1:], expected, strict=True))


def test_stateless_rules_have_empty_state_and_refuse_foreign_state() -> None:
    assert Median().state_dict() == {}
    with pytest.raises(ValueError, match="keeps no state"):
        Median().load_state_dict({"memory": torch.zeros(1)})
    for name in AGGREGATORS.primary_names():
        try:
            rule = AGGREGATORS.get(name)
        except (TypeError, ValueError):  # rules that need arguments (inner rules, reference data)
            continue
        assert isinstance(rule.state_dict(), dict)
