"""Error feedback (seed 000, "Memory Mechanism"; Karimireddy et al., 2019, Algorithm 2 EF-SGD).

Each sender keeps the part of its updates the compressor dropped and adds it back next time:
``p = x + e``, send ``C(p)``, ``e <- p - C(p)``. Summed over rounds, what was sent plus the final
memory equals what was meant to be sent, so nothing is lost, only delayed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.compressors.base import Compressor, Message, check_vector


class ErrorFeedback:
    """Wrap ``compressor`` with a per-sender memory ``e`` (one row per sender, as the input batch).

    ``compress``/``decompress``/``__call__`` mirror the wrapped compressor; ``memory`` is the current
    ``e`` (``None`` before the first call); ``reset()`` clears it. A batch of a different shape than the
    memory raises ``ValueError`` (call ``reset()`` when the set of senders changes).
    """

    def __init__(self, compressor: Compressor) -> None:
        if not isinstance(compressor, Compressor):
            raise ValueError(f"ErrorFeedback needs a Compressor, got {type(compressor).__name__}")
        self.compressor = compressor
        self.memory: Tensor | None = None

    def compress(self, x: Tensor, rng: torch.Generator | None = None) -> Message:
        """Compress ``x + e`` and keep the new residual ``e = x + e - C(x + e)``."""
        check_vector(x)
        if self.memory is None:
            self.memory = torch.zeros_like(x)
        elif self.memory.shape != x.shape:
            raise ValueError(
                f"error-feedback memory has shape {tuple(self.memory.shape)} but x has {tuple(x.shape)}; "
                "call reset() when the senders change"
            )
        p = x + self.memory.to(x.device)
        msg = self.compressor.compress(p, rng)
        self.memory = p - self.compressor.decompress(msg).to(p.dtype)
        return msg

    def decompress(self, msg: Message) -> Tensor:
        return self.compressor.decompress(msg)

    def __call__(self, x: Tensor, rng: torch.Generator | None = None) -> Tensor:
        return self.decompress(self.compress(x, rng))

    def reset(self) -> None:
        """Forget the memory (and any state of the wrapped compressor)."""
        self.memory = None
        self.compressor.reset()

    def __repr__(self) -> str:
        return f"ErrorFeedback({self.compressor!r})"
