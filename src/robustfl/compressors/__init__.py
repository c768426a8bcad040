"""Compressors with exact bit accounting, error feedback and a bytes wire format.

``get("qsgd", s=4)`` builds one by name; ``COMPRESSORS.names()`` lists them. See ``docs/compression.md``.
"""

from typing import Any

from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message
from robustfl.compressors.error_feedback import ErrorFeedback
from robustfl.compressors.identity import Identity
from robustfl.compressors.quantize import QSGD, Elementwise, Sign, TernGrad
from robustfl.compressors.sparse import RandK, Sparsifier, TopK

__all__ = [
    "COMPRESSORS",
    "QSGD",
    "Compressor",
    "Elementwise",
    "ErrorFeedback",
    "Field",
    "Identity",
    "Message",
    "RandK",
    "Sign",
    "Sparsifier",
    "TernGrad",
    "TopK",
    "get",
]


def get(name: str, **params: Any) -> Compressor:
    """Build the compressor registered as ``name`` (case-insensitive) with ``params``."""
    return COMPRESSORS.get(name, **params)
