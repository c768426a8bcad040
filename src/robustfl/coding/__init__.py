"""Coding-theoretic robustness: DRACO (repetition and cyclic codes) and DETOX, as pure tensor maths.

A scheme says who computes what (``assignment``), what each worker sends (``encode``/``encode_all``)
and how the server recovers the gradient (``decode``/``decode_report``); see ``docs/coding.md``.
``get("draco-repetition", workers=45, s=2)`` builds one by name; ``CODINGS.names()`` lists them.
"""

from typing import Any

from robustfl.coding.base import CODINGS, CodedScheme, DecodeReport
from robustfl.coding.cyclic import DracoCyclic
from robustfl.coding.detox import (
    Detox,
    detox_bulyan,
    detox_median,
    detox_multi_krum,
    detox_signsgd,
    expected_byzantine_votes,
)
from robustfl.coding.repetition import DracoRepetition
from robustfl.coding.vote import majority_vote

__all__ = [
    "CODINGS",
    "CodedScheme",
    "DecodeReport",
    "Detox",
    "DracoCyclic",
    "DracoRepetition",
    "detox_bulyan",
    "detox_median",
    "detox_multi_krum",
    "detox_signsgd",
    "expected_byzantine_votes",
    "get",
    "majority_vote",
]


def get(name: str, **params: Any) -> CodedScheme:
    """Build the coded scheme registered as ``name`` (case-insensitive) with ``params``."""
    return CODINGS.get(name, **params)
