"""Compressors with exact bit accounting, error feedback and a bytes wire format.

``get("qsgd", s=4)`` builds one by name; ``COMPRESSORS.names()`` lists them. See ``docs/compression.md``.
"""

from typing import Any

from robustfl.compressors.atomo import ATOMO, atomo_probabilities
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message
from robustfl.compressors.compose import Compose
from robustfl.compressors.error_feedback import ErrorFeedback
from robustfl.compressors.identity import Identity
from robustfl.compressors.lowrank import PowerSGD
from robustfl.compressors.quantize import QSGD, Elementwise, Sign, TernGrad
from robustfl.compressors.sparse import BlockSampling, RandK, RandL, Sparsifier, TopK

__all__ = [
    "ATOMO",
    "COMPRESSORS",
    "QSGD",
    "BlockSampling",
    "Compose",
    "Compressor",
    "Elementwise",
    "ErrorFeedback",
    "Field",
    "Identity",
    "Message",
    "PowerSGD",
    "RandK",
    "RandL",
    "Sign",
    "Sparsifier",
    "TernGrad",
    "TopK",
    "atomo_probabilities",
    "get",
]


def get(name: str, **params: Any) -> Compressor:
    """Build the compressor registered as ``name`` (case-insensitive) with ``params``."""
    return COMPRESSORS.get(name, **params)
