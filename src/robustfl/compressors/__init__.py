"""Compressors with exact bit accounting, error feedback and a bytes wire format.

``get("qsgd", s=4)`` builds one by name; ``COMPRESSORS.names()`` lists them. See ``docs/compression.md``.
"""

from collections.abc import Sequence
from typing import Any

from robustfl.compressors.atomo import ATOMO, atomo_probabilities
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message
from robustfl.compressors.compose import Compose
from robustfl.compressors.error_feedback import ErrorFeedback
from robustfl.compressors.identity import Identity
from robustfl.compressors.layerwise import LayerWise, qsgd_levels
from robustfl.compressors.lowrank import PowerSGD
from robustfl.compressors.quantize import QSGD, Elementwise, Sign, TernGrad
from robustfl.compressors.scaled import Contractive
from robustfl.compressors.signum import Signum
from robustfl.compressors.sparse import BlockSampling, RandK, RandL, Sparsifier, TopK
from robustfl.compressors.wire import Expect

__all__ = [
    "ATOMO",
    "COMPRESSORS",
    "QSGD",
    "BlockSampling",
    "Compose",
    "Compressor",
    "Contractive",
    "Elementwise",
    "ErrorFeedback",
    "Expect",
    "Field",
    "Identity",
    "LayerWise",
    "Message",
    "PowerSGD",
    "RandK",
    "RandL",
    "Sign",
    "Signum",
    "Sparsifier",
    "TernGrad",
    "TopK",
    "atomo_probabilities",
    "build",
    "get",
    "qsgd_levels",
]


def get(name: str, **params: Any) -> Compressor:
    """Build the compressor registered as ``name`` (case-insensitive) with ``params``."""
    return COMPRESSORS.get(name, **params)


def build(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    error_feedback: bool = False,
    shapes: Sequence[Sequence[int]] | None = None,
) -> Compressor | ErrorFeedback:
    """A compressor from a config: ``get(name, **params)``, given the model's parameter ``shapes``
    when it takes them and the config did not set them (PowerSGD, ``ATOMO(atoms="svd")``), wrapped in
    ``ErrorFeedback`` when ``error_feedback``."""
    params = dict(params or {})
    wants_shapes = "shapes" in COMPRESSORS.parameters(name) and "shapes" not in params
    if shapes is not None and wants_shapes and (name.lower() != "atomo" or params.get("atoms") == "svd"):
        params["shapes"] = [tuple(s) for s in shapes]
    compressor = get(name, **params)
    return ErrorFeedback(compressor) if error_feedback else compressor
