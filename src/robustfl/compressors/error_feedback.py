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
    ``__call__``), the object keeps the state of one fixed batch of senders (``memory``: the residuals);
    a batch of another shape raises ``ValueError`` (call ``reset()`` when the senders change).
    """

    def __init__(self, compressor: Compressor) -> None:
        if not isinstance(compressor, Compressor) or isinstance(compressor, ErrorFeedback):
            raise ValueError(f"ErrorFeedback needs a Compressor, got {type(compressor).__name__}")
        self.compressor = compressor
        self._state: dict[str, Tensor] | None = None

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
        if self._state is None:
            self._state = {
                k: v.unsqueeze(0).repeat_interleave(batch.shape[0], 0)
                for k, v in self.init_row_state(batch[0]).items()
            }
        elif self._state[MEMORY].shape != batch.shape:
            raise ValueError(
                f"error-feedback memory has shape {tuple(self._state[MEMORY].shape)} but x has "
                f"{tuple(batch.shape)}; call reset() when the senders change"
            )
        msg, self._state = self.encode(batch, rng, self._state)
        msg.squeeze = squeeze
        return msg

    @property
    def memory(self) -> Tensor | None:
        """The residuals ``e`` of the senders of the direct-use path (``None`` before the first call)."""
        return None if self._state is None else self._state[MEMORY]

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
        self._state = None
        self.compressor.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self._state, "inner": self.compressor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._state = state["rows"]
        self.compressor.load_state_dict(state["inner"])

    def wire_params(self) -> str:
        """The wrapped compressor's: its messages are the ones on the wire."""
        return self.compressor.wire_params()

    def params(self) -> dict[str, Any]:
        return {"compressor": self.compressor}

    def __repr__(self) -> str:
        return f"ErrorFeedback({self.compressor!r})"
