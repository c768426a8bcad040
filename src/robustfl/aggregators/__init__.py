"""Robust aggregation rules and pre-aggregators over flat message matrices ``Tensor[n, d]``.

``get("krum", f=2)`` builds a rule by name; ``AGGREGATORS.names()`` lists them.
"""

from typing import Any

from robustfl.aggregators.base import AGGREGATORS, Aggregator, PreAggregator
from robustfl.aggregators.bgmd import BlockGeometricMedian
from robustfl.aggregators.bulyan import Bulyan
from robustfl.aggregators.clipping import CenteredClipping, Clipping
from robustfl.aggregators.clustering import ClippedClustering
from robustfl.aggregators.coordinatewise import Median, TrimmedMean
from robustfl.aggregators.dnc import DnC
from robustfl.aggregators.flame import FLAME
from robustfl.aggregators.fltrust import FLTrust, ReferenceRule
from robustfl.aggregators.foolsgold import FoolsGold
from robustfl.aggregators.geomed import GeometricMedian
from robustfl.aggregators.krum import Krum, MultiKrum
from robustfl.aggregators.mean import Average
from robustfl.aggregators.pipeline import Pipeline
from robustfl.aggregators.sign import SignMajority
from robustfl.aggregators.signguard import SignGuard

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "Average",
    "BlockGeometricMedian",
    "Bulyan",
    "CenteredClipping",
    "Clipping",
    "GeometricMedian",
    "Krum",
    "Median",
    "MultiKrum",
    "Pipeline",
    "PreAggregator",
    "SignMajority",
    "TrimmedMean",
    "get",
]

# ByzFL-parity rules and pre-aggregators (branch agg-parity)
from robustfl.aggregators.arc import ARC
from robustfl.aggregators.bucketing import Bucketing
from robustfl.aggregators.caf import CAF
from robustfl.aggregators.defences import NormDifferenceClipping, WeakDP
from robustfl.aggregators.mda import MDA
from robustfl.aggregators.meamed import Meamed
from robustfl.aggregators.monna import MoNNA
from robustfl.aggregators.nnm import NNM
from robustfl.aggregators.smea import SMEA

__all__ += [
    "ARC",
    "CAF",
    "MDA",
    "NNM",
    "SMEA",
    "Bucketing",
    "Meamed",
    "MoNNA",
    "NormDifferenceClipping",
    "WeakDP",
]
# Defences beyond the peers (branch defences)
__all__ += ["FLAME", "ClippedClustering", "DnC", "FLTrust", "FoolsGold", "ReferenceRule", "SignGuard"]


def get(name: str, **params: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` (case-insensitive) with ``params``."""
    return AGGREGATORS.get(name, **params)
