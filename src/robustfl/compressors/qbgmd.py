"""QBGMD (seed 000, "Quantized BGMD", Lemma 4): BGMD where clients send ``Q_s``-quantised gradients.

``QBGMD(s, k or ratio, reading=...)`` pairs ``QSGD(s)`` (the clients' compressor) with
``BlockGeometricMedian`` (the server's rule) and reports the bits of every round. Two readings of
"clients communicate only quantized gradients" are offered:

- ``reading="quantize"``: each client sends its whole ``Q_s(g_i)`` (QSGD message); the server decodes
  the rows and runs BGMD (Alg. 1-2: memory, block sampling, GM on the block). Bits per round = the sum
  of the QSGD messages. This is a complete protocol.
- ``reading="block"``: Lemma 4's operator ``C_k(Q_s(g_i))``: each client sends only the codes of its
  quantised vector on the block ``I`` that BGMD selects (plus its norm), and ``I`` is broadcast once
  (``k ceil(log2 d)`` bits). The aggregate is the same as in ``"quantize"`` (GM on the block uses only
  those coordinates); what changes is the accounting. Selecting ``I`` and keeping BGMD's memory need
  the column statistics of all quantised rows, which seed 000's Algorithm 1 holds at the server;
  this reading counts the uplink of the block only, as in the lemma.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from robustfl.aggregators.bgmd import BlockGeometricMedian, Sampling
from robustfl.compressors.base import Randomness
from robustfl.compressors.codecs import index_bits
from robustfl.compressors.compose import restrict
from robustfl.compressors.quantize import QSGD


@dataclass(frozen=True)
class QBGMDRound:
    """One round: the aggregate, the total bits, the bits of each client, the block used."""

    aggregate: Tensor
    bits: int
    bits_per_client: Tensor
    broadcast_bits: int
    indices: Tensor


class QBGMD:
    """QSGD(``s``) clients + BlockGeometricMedian(``k``/``ratio``, ``sampling``, ``nu``, ``T``, ``tol``,
    ``seed``) server; ``round(grads, rng)`` runs one aggregation and reports its bits.

    ``compressor`` and ``aggregator`` are exposed for engines that move the messages themselves
    (``reading="quantize"``: send ``compressor.compress(g_i)``, aggregate the decoded rows).
    """

    def __init__(
        self,
        s: int = 4,
        k: int | None = None,
        ratio: float | None = None,
        reading: str = "quantize",
        coding: str = "elias",
        sampling: Sampling = "proportional",
        nu: float = 0.1,
        T: int = 3,
        tol: float | None = None,
        seed: int = 0,
    ) -> None:
        if reading not in ("quantize", "block"):
            raise ValueError(f"reading must be 'quantize' or 'block', got {reading!r}")
        self.reading = reading
        self.compressor = QSGD(s=s, coding=coding)
        self.aggregator = BlockGeometricMedian(
            k=k, ratio=ratio, sampling=sampling, nu=nu, T=T, tol=tol, seed=seed
        )

    def round(self, grads: Tensor, rng: Randomness = None) -> QBGMDRound:
        """Quantise each client's row of ``grads: Tensor[n, d]``, aggregate with BGMD, count the bits."""
        msg = self.compressor.compress(grads, rng)
        if msg.squeeze:
            raise ValueError("QBGMD needs one row per client: grads must have shape [n, d]")
        out = self.aggregator(self.compressor.decompress(msg))
        idx = self.aggregator.last_indices
        assert idx is not None
        if self.reading == "quantize":
            per_client, broadcast = msg.bits_per_row, 0
        else:
            block = restrict(self.compressor, msg, idx.to(grads.device).expand(msg.n, -1))
            per_client, broadcast = block.bits_per_row, idx.numel() * index_bits(msg.d)
        return QBGMDRound(out, int(per_client.sum()) + broadcast, per_client, broadcast, idx)

    def reset(self) -> None:
        """Forget BGMD's memory (and re-seed its block sampling)."""
        self.aggregator.reset()

    def __repr__(self) -> str:
        return (
            f"QBGMD(reading={self.reading!r}, compressor={self.compressor!r}, aggregator={self.aggregator!r})"
        )
