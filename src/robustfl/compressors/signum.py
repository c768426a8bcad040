"""SIGNUM (Bernstein et al., ICML 2018): each worker sends the sign of its local momentum.

``m <- beta m + (1 - beta) g``, message ``sign(m)``: exactly one bit per coordinate, no scale. The
server combines the ±1 vectors (the PUFFERFISH comparison of seed 004 §4.3 gathers them with
all-gather; ``sign-majority`` is the majority-vote aggregator of Bernstein et al., 2019) and steps
``lr * aggregate``. ``sign(0)`` is sent as ``+1`` (one bit cannot say 0). The momentum is kept per
sender on the object (like PowerSGD's warm start): ``reset()`` forgets it, ``state_dict`` saves it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators.base import check_positive
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message
from robustfl.compressors.codecs import UInt


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

    def _compress(self, x: Tensor, rng: torch.Generator | None) -> Message:
        n, d = x.shape
        if self._m is None:
            m = (1 - self.beta) * x
        elif self._m.shape != x.shape:
            raise ValueError(
                f"SIGNUM momentum has shape {tuple(self._m.shape)} but x has {tuple(x.shape)}; call reset()"
            )
        else:
            m = self.beta * self._m.to(x) + (1 - self.beta) * x
        self._m = m
        return Message(self.name, n, d, x.dtype, {"signs": Field((m < 0).to(torch.uint8), UInt(1))})

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
