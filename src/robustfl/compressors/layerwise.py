"""Per-layer compression: one instance of a compressor per parameter tensor of the model's layout.

The ATOMO experiments (Wang et al., NeurIPS 2018; seed 004 §3.5) code every layer on its own:
spectral-ATOMO spends a sparsity budget ``s`` *per layer*, QSGD uses "bucket size equal to the number
of parameters in each layer" (one norm per layer), and TernGrad scales each layer by its own max.
``LayerWise(inner, shapes)`` does that for any compressor: the flat vector is cut at the layer
boundaries of ``shapes``, layer ``l`` is compressed by its own copy of ``inner`` (which sees the
layer as ``matrix_view(shape, conv)`` when it takes ``shapes``), and the message carries each
layer's fields under the prefix ``L<l>.``. Bits are exactly the sum of the layers' bits.

Convenience constructors, registered by name: ``qsgd-layers`` (``bits`` -> levels, below),
``spectral-atomo`` (budget ``s`` per layer, the chapter's ``[xy/2, 2k^2]`` view by default),
``terngrad-layers``.

**b-bit QSGD.** The chapter calls 1-bit QSGD the scheme with ``zeta_i ~ Bernoulli(|g_i| / ||g||)``
(§3.3.1), i.e. ``s = 1`` level. We read "b bits" as the width of one level in ``{0, ..., s}``, so
``s = 2^b - 1`` (b = 1, 2, 4, 8 -> s = 1, 3, 15, 255): 1-bit QSGD is then the chapter's, and with
``coding="fixed"`` a coordinate costs exactly ``b`` level bits plus one sign bit.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor

from robustfl.checks import check_int
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message, Randomness, check_vector
from robustfl.compressors.compose import build_part
from robustfl.compressors.layers import matrix_view, parse_shapes


def qsgd_levels(bits: int) -> int:
    """QSGD levels ``s = 2^bits - 1`` for ``bits``-bit QSGD (see the module docstring)."""
    return 2 ** check_int("bits", bits, minimum=1) - 1


def _wants_shapes(spec: Any) -> bool:
    """Whether the compressor named by ``spec`` (name or dict) reads a parameter layout: it has a
    ``shapes`` parameter and, if it has ``atoms``, uses ``atoms="svd"`` (ATOMO)."""
    name = spec if isinstance(spec, str) else spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or name not in COMPRESSORS:
        return False
    signature = COMPRESSORS.parameters(name)
    if "shapes" not in signature:
        return False
    params = spec if isinstance(spec, dict) else {}
    return "atoms" not in signature or params.get("atoms", signature["atoms"]) == "svd"


def _prefix(layer: int) -> str:
    return f"L{layer}."


@COMPRESSORS.register("layerwise", "per-layer")
class LayerWise(Compressor):
    """Compress each parameter tensor of ``shapes`` with its own copy of ``inner``.

    ``inner``: a compressor object (copied per layer), a registry name, or ``{"name": ..., **params}``.
    An inner compressor with a ``shapes`` parameter (ATOMO with ``atoms="svd"``, PowerSGD) gets the
    layer's ``matrix_view(shape, conv)``. Unbiased when ``inner`` is; since the layers' errors add up,
    ``omega = max over layers of inner.omega(layer size)``. State (PowerSGD's warm start, SIGNUM's
    momentum) is kept per layer; ``state_dict`` keys are ``L<l>.<key>``.
    """

    name = "layerwise"

    def __init__(self, inner: Any = "qsgd", shapes: object = None, conv: str = "out") -> None:
        self.shapes = parse_shapes(shapes)
        self.conv = conv
        self.views = [matrix_view(s, conv) for s in self.shapes]
        self._layers = [self._for_layer(inner, view) for view in self.views]
        if any(isinstance(part, LayerWise) for part in self._layers):
            raise ValueError("inner must compress one layer; a LayerWise cannot be nested")
        self.inner = inner if isinstance(inner, Compressor | str) else dict(inner)
        self._sizes = [math.prod(s) for s in self.shapes]
        self.unbiased = self._layers[0].unbiased

    @staticmethod
    def _for_layer(spec: Any, view: tuple[int, ...]) -> Compressor:
        """Layer ``view``'s own compressor: a copy of an object, or built from a name/dict (with
        ``shapes=[view]`` when it takes shapes and, for ATOMO, uses ``atoms="svd"``)."""
        if isinstance(spec, Compressor):
            if spec.params().get("shapes") is not None:
                raise ValueError(
                    f"inner {spec!r} is bound to other shapes; give it as a name or dict so each layer gets its own"
                )
            return copy.deepcopy(spec)
        part = build_part(spec, "inner") if not _wants_shapes(spec) else None
        if part is not None:
            return part
        params = {"name": spec} if isinstance(spec, str) else dict(spec)
        params["shapes"] = [view]
        return build_part(params, "inner")

    def _split(self, d: int) -> list[tuple[int, int]]:
        if sum(self._sizes) != d:
            raise ValueError(
                f"LayerWise: the shapes cover {sum(self._sizes)} parameters but x has d={d}; pass the model's shapes"
            )
        out, offset = [], 0
        for size in self._sizes:
            out.append((offset, size))
            offset += size
        return out

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        n, d = x.shape
        fields: dict[str, Field] = {}
        for layer, ((offset, size), part) in enumerate(zip(self._split(d), self._layers, strict=True)):
            msg = part._compress(x[:, offset : offset + size], rng)
            fields.update({_prefix(layer) + key: f for key, f in msg.fields.items()})
        return Message(self.name, n, d, x.dtype, fields)

    def init_row_state(self, row: Tensor) -> dict[str, Tensor]:
        """Each layer's per-sender state (PowerSGD's warm start, SIGNUM's momentum) under ``L<l>.``."""
        return {
            _prefix(layer) + key: value
            for layer, ((offset, size), part) in enumerate(
                zip(self._split(row.shape[-1]), self._layers, strict=True)
            )
            for key, value in part.init_row_state(row[offset : offset + size]).items()
        }

    def encode(
        self, x: Tensor, rng: Randomness, state: dict[str, Tensor]
    ) -> tuple[Message, dict[str, Tensor]]:
        """Engine v2's stateful path: each layer's ``encode`` with its own rows of ``state``."""
        batch, _ = check_vector(x)
        n, d = batch.shape
        fields: dict[str, Field] = {}
        new: dict[str, Tensor] = {}
        for layer, ((offset, size), part) in enumerate(zip(self._split(d), self._layers, strict=True)):
            prefix = _prefix(layer)
            own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            msg, own = part.encode(batch[:, offset : offset + size], rng, own)
            fields.update({prefix + key: f for key, f in msg.fields.items()})
            new.update({prefix + key: v for key, v in own.items()})
        return Message(self.name, n, d, batch.dtype, fields), new

    def _decompress(self, msg: Message) -> Tensor:
        pieces = []
        for layer, ((_, size), part) in enumerate(zip(self._split(msg.d), self._layers, strict=True)):
            prefix = _prefix(layer)
            fields = {k[len(prefix) :]: f for k, f in msg.fields.items() if k.startswith(prefix)}
            inner = Message(part.name, msg.n, size, msg.dtype, fields)
            pieces.append(part._decompress(inner).to(msg.dtype))
        return torch.cat(pieces, dim=1)

    def omega(self, d: int) -> float | None:
        values = [part.omega(size) for part, size in zip(self._layers, self._sizes, strict=True)]
        return None if any(v is None for v in values) else max(v for v in values if v is not None)

    def reset(self) -> None:
        for part in self._layers:
            part.reset()

    def state_dict(self) -> dict[str, Tensor]:
        return {
            _prefix(layer) + key: value
            for layer, part in enumerate(self._layers)
            for key, value in part.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        known = {_prefix(i) for i in range(len(self._layers))}
        stray = [k for k in state if k.split(".", 1)[0] + "." not in known]
        if stray:
            raise ValueError(f"LayerWise state keys must look like 'L<layer>.<key>', got {sorted(stray)}")
        for layer, part in enumerate(self._layers):
            prefix = _prefix(layer)
            part.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})

    def params(self) -> dict[str, Any]:
        return {"inner": self.inner, "shapes": self.shapes, "conv": self.conv}


@COMPRESSORS.register("qsgd-layers")
def qsgd_layers(bits: int = 4, shapes: object = None, coding: str = "elias") -> LayerWise:
    """``bits``-bit QSGD (``s = 2^bits - 1`` levels) with one bucket per layer (seed 004 §3.5);
    ``coding`` is QSGD's: ``"elias"`` (gamma), ``"elias-omega"`` or ``"fixed"``."""
    return LayerWise({"name": "qsgd", "s": qsgd_levels(bits), "coding": coding}, shapes)


@COMPRESSORS.register("spectral-atomo")
def spectral_atomo(budget: float = 2.0, shapes: object = None, conv: str = "pairs") -> LayerWise:
    """Spectral-ATOMO with sparsity budget ``budget`` per layer; conv kernels seen as ``[xy/2, 2k^2]``
    (``conv="pairs"``, seed 004 §3.5) or ``[out, in k^2]`` (``conv="out"``)."""
    return LayerWise({"name": "atomo", "budget": budget, "atoms": "svd"}, shapes, conv=conv)


@COMPRESSORS.register("terngrad-layers")
def terngrad_layers(shapes: object = None) -> LayerWise:
    """TernGrad with one scale ``||g_l||_inf`` per layer (Wen et al., 2017, layer-wise ternarising)."""
    return LayerWise("terngrad", shapes)
