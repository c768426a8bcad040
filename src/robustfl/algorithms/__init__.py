"""Training algorithms as a pure client step and a pure server step (see ``base``).

``get("sgd", momentum=0.9)`` builds one by name; ``ALGORITHMS.names()`` lists them.
"""

from typing import Any

from robustfl.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    ClientOutput,
    Cohort,
    GradFn,
    ServerOutput,
    State,
)
from robustfl.algorithms.crsa import CRSA
from robustfl.algorithms.fedavg import FedAvg
from robustfl.algorithms.fedavg_pgd import PGDFedAvg
from robustfl.algorithms.fedprox import FedProx
from robustfl.algorithms.fl_bgmd import FLBGMD
from robustfl.algorithms.gossip import Gossip
from robustfl.algorithms.masked import MaskedTraining
from robustfl.algorithms.mime import Mime, MimeLite
from robustfl.algorithms.optim import SERVER_OPTIMIZERS, ClientOptimizer, ServerOptimizer
from robustfl.algorithms.rsa import RSA
from robustfl.algorithms.scaffold import Scaffold
from robustfl.algorithms.sgd import DistributedSGD

__all__ = [
    "ALGORITHMS",
    "CRSA",
    "FLBGMD",
    "RSA",
    "SERVER_OPTIMIZERS",
    "Algorithm",
    "ClientOptimizer",
    "ClientOutput",
    "Cohort",
    "DistributedSGD",
    "FedAvg",
    "FedProx",
    "Gossip",
    "GradFn",
    "MaskedTraining",
    "Mime",
    "MimeLite",
    "PGDFedAvg",
    "Scaffold",
    "ServerOptimizer",
    "ServerOutput",
    "State",
    "get",
]


def get(name: str, **params: Any) -> Algorithm:
    """Build the algorithm registered as ``name`` (case-insensitive) with ``params``."""
    return ALGORITHMS.get(name, **params)
