"""No compression: the baseline every bit count is compared against."""

from __future__ import annotations

from torch import Tensor

from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message, Randomness
from robustfl.compressors.codecs import Float


@COMPRESSORS.register("identity", "none")
class Identity(Compressor):
    """``C(x) = x``, sent at the input's precision: ``bits = d * 32`` per sender for float32.

    Unbiased with ``omega = 0`` and contractive with ``delta = 1``.
    """

    name = "identity"
    unbiased = True

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        n, d = x.shape
        return Message(self.name, n, d, x.dtype, {"values": Field(x.clone(), Float(x.dtype))})

    def _decompress(self, msg: Message) -> Tensor:
        values = msg.get("values")
        if tuple(values.shape) != (msg.n, msg.d):
            raise ValueError(
                f"identity message values have shape {tuple(values.shape)}, expected ({msg.n}, {msg.d})"
            )
        return values.to(msg.dtype, copy=True)

    def omega(self, d: int) -> float:
        return 0.0
