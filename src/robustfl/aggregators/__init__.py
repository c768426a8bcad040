"""Robust aggregation rules and pre-aggregators over flat message matrices ``Tensor[n, d]``.

``get("krum", f=2)`` builds a rule by name; ``AGGREGATORS.names()`` lists them.
"""

from typing import Any

from robustfl.aggregators.base import AGGREGATORS, Aggregator, PreAggregator
from robustfl.aggregators.mean import Average

__all__ = ["AGGREGATORS", "Aggregator", "Average", "PreAggregator", "get"]


def get(name: str, **params: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` (case-insensitive) with ``params``."""
    return AGGREGATORS.get(name, **params)


import robustfl.attacks.defences  # noqa: E402, F401  (registers the backdoor defences "ndc" and "weak-dp")
