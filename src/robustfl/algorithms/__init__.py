"""Training algorithms as a pure client step and a pure server step (see ``base``).

``get("sgd", momentum=0.9)`` builds one by name; ``ALGORITHMS.names()`` lists them.
"""

from typing import Any

from robustfl.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    ClientOutput,
    GradFn,
    State,
)
from robustfl.algorithms.fedavg import FedAvg
from robustfl.algorithms.sgd import DistributedSGD

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "ClientOutput",
    "DistributedSGD",
    "FedAvg",
    "GradFn",
    "State",
    "get",
]


def get(name: str, **params: Any) -> Algorithm:
    """Build the algorithm registered as ``name`` (case-insensitive) with ``params``."""
    return ALGORITHMS.get(name, **params)


import robustfl.attacks.pgd_training  # noqa: E402, F401  (registers "fedavg-pgd", the edge-case PGD attackers' FedAvg)
