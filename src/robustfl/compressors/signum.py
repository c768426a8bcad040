"""SIGNUM (Bernstein et al., ICML 2018): each worker sends the sign of its local momentum.

``m <- beta m + (1 - beta) g``, message ``sign(m)``: exactly one bit per coordinate, no scale. The
server combines the ±1 vectors (the PUFFERFISH comparison of seed 004 §4.3 gathers them with
all-gather; ``sign-majority`` is the majority-vote aggregator of Bernstein et al., 2019) and steps
``lr * aggregate``. ``sign(0)`` is sent as ``+1`` (one bit cannot say 0). The momentum is per sender:
in the engine it lives in client state (``init_row_state`` / ``encode``), used on its own on the
object (``compress``; ``reset()`` forgets it, ``state_dict`` saves it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.checks import check_positive
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message, Randomness, check_vector
from robustfl.compressors.codecs import UInt

MOMENTUM = "signum_momentum"
"""The key of a sender's momentum in its state."""


@COMPRESSORS.register("signum")
class Signum(Compressor):
    """``sign(beta m + (1 - beta) x)`` per sender; ``beta = 0`` is signSGD. ``d`` bits per sender.

    Biased and not contractive in the sense of ``delta`` (its output has norm ``sqrt(d)`` whatever
    the input), so ``delta = None``. A batch with a different shape than the momentum raises
    ``ValueError`` (call ``reset()`` when the senders change).
    """

    name = "signum"

    def __init__(self, beta: float = 0.9) -> None:
        self.beta = check_positive("beta", beta, allow_zero=True)
        if self.beta >= 1:
            raise ValueError(f"beta must be in [0, 1), got {beta!r}")
        self._m: Tensor | None = None

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        if self._m is not None and self._m.shape != x.shape:
            raise ValueError(
                f"SIGNUM momentum has shape {tuple(self._m.shape)} but x has {tuple(x.shape)}; call reset()"
            )
        self._m = self._momentum(x, self._m)
        return self._message(self._m)

    def init_row_state(self, row: Tensor) -> dict[str, Tensor]:
        """Each sender's momentum, zero at the start (the engine keeps it per client)."""
        return {MOMENTUM: row.new_zeros(row.shape)}

    def encode(
        self, x: Tensor, rng: Randomness, state: dict[str, Tensor]
    ) -> tuple[Message, dict[str, Tensor]]:
        batch, _ = check_vector(x)
        m = self._momentum(batch, state[MOMENTUM])
        return self._message(m), {MOMENTUM: m}

    def _momentum(self, x: Tensor, m: Tensor | None) -> Tensor:
        """``beta m + (1 - beta) x`` (``m = 0`` before the first call)."""
        return (1 - self.beta) * x if m is None else self.beta * m.to(x) + (1 - self.beta) * x

    def _message(self, m: Tensor) -> Message:
        n, d = m.shape
        return Message(self.name, n, d, m.dtype, {"signs": Field((m < 0).to(torch.uint8), UInt(1))})

    def _decompress(self, msg: Message) -> Tensor:
        signs = msg.get_rows("signs", msg.d)
        if signs.numel() and int(signs.max()) > 1:
            raise ValueError("signum message has a code outside {0, 1}")
        return 1 - 2 * signs.to(msg.dtype)

    def delta(self, d: int) -> None:
        return None

    def reset(self) -> None:
        self._m = None

    def state_dict(self) -> dict[str, Tensor]:
        return {} if self._m is None else {"momentum": self._m.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if set(state) - {"momentum"}:
            raise ValueError(f"SIGNUM state has only 'momentum', got {sorted(state)}")
        self._m = state["momentum"].clone() if "momentum" in state else None

    def params(self) -> dict[str, object]:
        return {"beta": self.beta}
