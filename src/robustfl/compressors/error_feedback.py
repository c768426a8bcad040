"""Error feedback (seed 000, "Memory Mechanism"; Karimireddy et al., 2019, Algorithm 2 EF-SGD).

Each sender keeps the part of its updates the compressor dropped and adds it back next time:
``p = x + e``, send ``C(p)``, ``e <- p - C(p)``. Summed over rounds, what was sent plus the final
memory equals what was meant to be sent, so nothing is lost, only delayed.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from robustfl.compressors.base import Compressor, Message, Randomness, check_vector

MEMORY = "ef_memory"
"""The key of the residual ``e`` in a sender's state."""


class ErrorFeedback(Compressor):
    """``compressor`` with a per-sender memory ``e``: a compressor whose state is one row per sender.

    The engine keeps ``e`` in client state, indexed by client id (``encode(x, rng, state)``), so a client
    that skips rounds keeps its memory and checkpoints hold it. Used on its own (``compress`` /
    ``__call__``), the object keeps the memory of one fixed batch of senders in ``memory``; a batch of
    another shape raises ``ValueError`` (call ``reset()`` when the senders change).
    """

    def __init__(self, compressor: Compressor) -> None:
        if not isinstance(compressor, Compressor) or isinstance(compressor, ErrorFeedback):
            raise ValueError(f"ErrorFeedback needs a Compressor, got {type(compressor).__name__}")
        self.compressor = compressor
        self.memory: Tensor | None = None

    def init_row_state(self, row: Tensor) -> dict[str, Tensor]:
        return {MEMORY: row.new_zeros(row.shape), **self.compressor.init_row_state(row)}

    def encode(
        self, x: Tensor, rng: Randomness, state: dict[str, Tensor]
    ) -> tuple[Message, dict[str, Tensor]]:
        """Compress ``x + e`` and return the new residual ``e = x + e - C(x + e)`` in the state."""
        batch, _ = check_vector(x)
        memory = state[MEMORY]
        if memory.shape != batch.shape:
            raise ValueError(
                f"error-feedback memory has shape {tuple(memory.shape)} but x has {tuple(batch.shape)}"
            )
        p = batch + memory.to(batch)
        inner = {k: v for k, v in state.items() if k != MEMORY}
        msg, inner = self.compressor.encode(p, rng, inner)
        return msg, {**inner, MEMORY: p - self.compressor.decompress(msg).to(p.dtype)}

    def compress(self, x: Tensor, rng: Randomness = None) -> Message:
        batch, squeeze = check_vector(x)
        if self.memory is None:
            self.memory = batch.new_zeros(batch.shape)
        elif self.memory.shape != batch.shape:
            raise ValueError(
                f"error-feedback memory has shape {tuple(self.memory.shape)} but x has {tuple(batch.shape)}; "
                "call reset() when the senders change"
            )
        msg, state = self.encode(batch, rng, {MEMORY: self.memory})
        self.memory = state[MEMORY]
        msg.squeeze = squeeze
        return msg

    def decompress(self, msg: Message) -> Tensor:
        """The wrapped compressor's reconstruction (messages are its own)."""
        return self.compressor.decompress(msg)

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        return self.compressor._compress(x, rng)

    def _decompress(self, msg: Message) -> Tensor:
        return self.compressor._decompress(msg)

    def omega(self, d: int) -> float | None:
        return self.compressor.omega(d)

    def delta(self, d: int) -> float | None:
        return self.compressor.delta(d)

    def reset(self) -> None:
        """Forget the memory (and any state of the wrapped compressor)."""
        self.memory = None
        self.compressor.reset()

    def state_dict(self) -> dict[str, Tensor]:
        inner = {f"inner.{k}": v for k, v in self.compressor.state_dict().items()}
        return inner if self.memory is None else {"memory": self.memory.clone(), **inner}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.memory = state["memory"].clone() if "memory" in state else None
        prefix = "inner."
        self.compressor.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )

    def params(self) -> dict[str, Any]:
        return {"compressor": self.compressor}

    def __repr__(self) -> str:
        return f"ErrorFeedback({self.compressor!r})"
