"""Turn an unbiased compressor into a contractive one by shrinking its output (for error feedback).

If ``E[C(x)] = x`` and ``E||C(x) - x||^2 <= omega ||x||^2`` then ``C(x) / (1 + omega)`` satisfies
``E||C(x)/(1 + omega) - x||^2 <= (1 - 1/(1 + omega)) ||x||^2``: expand the square and use
``E||C(x)||^2 <= (1 + omega) ||x||^2`` (the standard conversion, e.g. Stich and Karimireddy 2020).
The message and its bits are the wrapped compressor's; only the decoding is scaled.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from robustfl.compressors.base import COMPRESSORS, Compressor, Message, Randomness
from robustfl.compressors.compose import build_part


@COMPRESSORS.register("contractive", "scaled_down")
class Contractive(Compressor):
    """``C(x) / (1 + omega(d))`` for an unbiased ``inner`` (object, registry name or ``{"name": ...}``).

    Biased; contractive with ``delta = 1 / (1 + omega(d))``. Messages carry ``inner``'s name, so only a
    ``Contractive`` around the same ``inner`` decodes them with the shrinking.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = build_part(inner, "inner")
        if not self.inner.unbiased or self.inner.omega(1) is None:
            raise ValueError(
                f"inner must be an unbiased compressor with a variance bound omega, got {self.inner!r}"
            )

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        return self.inner._compress(x, rng)

    def _decompress(self, msg: Message) -> Tensor:
        omega = self.inner.omega(msg.d)
        assert omega is not None
        return self.inner._decompress(msg) / (1.0 + omega)

    def wire_params(self) -> str:
        """The wrapped compressor's: the messages are its messages (only decoding shrinks them)."""
        return self.inner.wire_params()

    def delta(self, d: int) -> float:
        omega = self.inner.omega(d)
        assert omega is not None
        return 1.0 / (1.0 + omega)

    def reset(self) -> None:
        self.inner.reset()

    def state_dict(self) -> dict[str, Tensor]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.inner.load_state_dict(state)

    def params(self) -> dict[str, Any]:
        return {"inner": self.inner}
