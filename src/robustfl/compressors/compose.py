"""Composition ``C_k(Q(x))``: a per-coordinate quantiser, then a sparsifier (seed 000, Lemma 4).

The quantiser ``Q`` codes the whole vector (its scale is computed on all of ``x``); the sparsifier
then chooses ``k`` coordinates of ``Q(x)`` (BlockSampling uses the column norms of the quantised
batch) and only their codes are sent, with the sparsifier's index fields. With
``Compose(BlockSampling(k), QSGD(s))`` this is QBGMD's message.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message, Randomness
from robustfl.compressors.quantize import Elementwise
from robustfl.compressors.sparse import Sparsifier, scatter_rows

PREFIX = "inner."


def build_part(spec: Any, role: str) -> Compressor:
    """A compressor given as an object, a registry name, or ``{"name": ..., **params}``."""
    if isinstance(spec, Compressor):
        return spec
    if isinstance(spec, str):
        return COMPRESSORS.get(spec)
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        params = {k: v for k, v in spec.items() if k != "name"}
        return COMPRESSORS.get(spec["name"], **params)
    raise ValueError(
        f"{role} must be a compressor, a name, or a dict with 'name' and parameters; got {spec!r}"
    )


def restrict(inner: Elementwise, qmsg: Message, idx: Tensor) -> Message:
    """The quantiser message ``qmsg`` cut down to coordinates ``idx: Tensor[n, k]``: its per-coordinate
    codes gathered at ``idx``, its scales kept; field names get the ``inner.`` prefix."""
    coordinate = set(inner.coordinate_fields)
    fields = {}
    for key, f in qmsg.fields.items():
        data = f.data
        assert isinstance(data, Tensor)
        kept = data.gather(1, idx.to(data.device)) if key in coordinate else data
        fields[PREFIX + key] = Field(kept, f.codec, f.per_row)
    return Message(qmsg.compressor, qmsg.n, qmsg.d, qmsg.dtype, fields)


@COMPRESSORS.register("compose")
class Compose(Compressor):
    """``Compose(outer, inner)`` sends ``outer(inner(x))`` as one message.

    ``outer`` is a sparsifier (TopK, RandK, RandL, BlockSampling), ``inner`` a per-coordinate quantiser
    (QSGD, TernGrad, Sign); either may be given as an object, a registry name, or
    ``{"name": ..., **params}``. Bits per sender: the sparsifier's index cost, the quantiser's scale,
    and the quantiser's codes of the ``k`` kept coordinates only.

    Unbiased when both parts are. Contractive (seed 000, Lemma 4) with
    ``delta = (1 - beta) delta_outer`` where ``beta`` is the quantiser's variance factor ``omega``
    (``None`` when ``beta >= 1`` or the sparsifier has no ``delta``).
    """

    name = "compose"

    def __init__(self, outer: Any, inner: Any) -> None:
        self.outer, self.inner = build_part(outer, "outer"), build_part(inner, "inner")
        if not isinstance(self.outer, Sparsifier) or isinstance(self.outer, Compose):
            raise ValueError(
                f"outer must be a sparsifier (topk, randk, randl, blocksampling), got {self.outer!r}"
            )
        if not isinstance(self.inner, Elementwise):
            raise ValueError(
                f"inner must be a per-coordinate quantiser (qsgd, terngrad, sign), got {self.inner!r}"
            )
        if getattr(self.outer, "sign", False):
            raise ValueError("outer RandL(sign=True) already quantises; use RandL(sign=False) in Compose")
        self.unbiased = self.outer.unbiased and self.inner.unbiased

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        assert isinstance(self.outer, Sparsifier) and isinstance(self.inner, Elementwise)
        qmsg = self.inner._compress(x, rng)
        fields, idx = self.outer.select(self.inner._decompress(qmsg), rng)
        fields.update(restrict(self.inner, qmsg, idx).fields)
        return Message(self.name, x.shape[0], x.shape[1], x.dtype, fields)

    def _decompress(self, msg: Message) -> Tensor:
        assert isinstance(self.outer, Sparsifier) and isinstance(self.inner, Elementwise)
        idx = self.outer.indices(msg)
        inner_fields = {k[len(PREFIX) :]: f for k, f in msg.fields.items() if k.startswith(PREFIX)}
        inner_msg = Message(self.inner.name, msg.n, idx.shape[1], msg.dtype, inner_fields)
        values = self.inner._decompress(inner_msg)
        if values.shape != idx.shape:
            raise ValueError(
                f"compose message has {tuple(values.shape)} codes for {tuple(idx.shape)} indices"
            )
        return scatter_rows(msg, idx, values * self.outer.scale(msg.d, idx.shape[1]))

    def omega(self, d: int) -> float | None:
        wo, wi = self.outer.omega(d), self.inner.omega(d)
        return None if wo is None or wi is None else (1 + wo) * (1 + wi) - 1

    def delta(self, d: int) -> float | None:
        beta, base = self.inner.omega(d), self.outer.delta(d)
        if self.unbiased:
            return super().delta(d)
        return None if beta is None or base is None or beta >= 1 else (1 - beta) * base

    def reset(self) -> None:
        self.outer.reset()
        self.inner.reset()

    def state_dict(self) -> dict[str, Tensor]:
        return {
            **{f"outer.{k}": v for k, v in self.outer.state_dict().items()},
            **{f"inner.{k}": v for k, v in self.inner.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for prefix, part in (("outer.", self.outer), ("inner.", self.inner)):
            part.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})

    def params(self) -> dict[str, Any]:
        return {"outer": self.outer, "inner": self.inner}
