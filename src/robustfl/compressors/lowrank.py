"""PowerSGD (Vogels, Karimireddy and Jaggi, 2019, Algorithm 1): rank-``r`` approximation of each layer.

For each matrix block ``M [a, b]`` of a sender's vector: ``P = M Q``, ``P_hat = orthogonalise(P)``
(reduced QR), ``Q = M^T P_hat``, and the receiver rebuilds ``P_hat Q^T``. ``Q`` is warm-started from
the previous call (kept per sender on the object; ``reset()`` forgets it), which makes one power
iteration per round track the top subspace. Error feedback is the ``ErrorFeedback`` wrapper.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robustfl.checks import check_int
from robustfl.compressors.base import (
    COMPRESSORS,
    Compressor,
    Field,
    Message,
    Randomness,
    check_vector,
    normal,
)
from robustfl.compressors.codecs import Float
from robustfl.compressors.layers import Block, blocks, check_dimension, parse_shapes
from robustfl.compressors.quantize import work_dtype


def low_rank_pays(block: Block, rank: int) -> bool:
    """Whether ``rank (a + b)`` values are fewer than the block's ``a b`` (else it is sent raw)."""
    return block.is_matrix and rank * (block.rows + block.cols) < block.numel


@COMPRESSORS.register("powersgd")
class PowerSGD(Compressor):
    """Rank-``rank`` PowerSGD over the layers of ``shapes``.

    Matrix blocks where ``rank (a + b) < a b`` send ``P_hat [a, r]`` and ``Q [b, r]``; other blocks
    (biases, tiny matrices) are sent raw. Bits per sender: ``32 (sum r (a + b) + sum raw numel)``.
    Biased, no contraction guarantee (``delta = None``). The first ``Q`` is Gaussian from ``rng``.
    A batch with a different number of senders than the warm-start state raises ``ValueError``.
    float16/bfloat16 inputs are computed in float32 (torch has no half-precision QR on CPU) and sent
    at their own precision; the warm start is the sent ``Q``.
    """

    name = "powersgd"

    def __init__(self, rank: int = 1, shapes: object = None) -> None:
        self.rank = check_int("rank", rank, minimum=1)
        self.shapes = parse_shapes(shapes)
        self._blocks = blocks(self.shapes)
        self._low = [b for b in self._blocks if low_rank_pays(b, self.rank)]
        self._q: Tensor | None = None

    def _q_width(self) -> int:
        """Values of one sender's warm-start ``Q`` (all low-rank blocks, flattened)."""
        return sum(b.cols * self.rank for b in self._low)

    def init_row_state(self, row: Tensor) -> dict[str, Tensor]:
        """Each sender's warm-start ``Q`` and whether it has one yet (the engine keeps them per client)."""
        return {"powersgd_q": row.new_zeros(self._q_width()), "powersgd_started": row.new_zeros(())}

    def encode(
        self, x: Tensor, rng: Randomness, state: dict[str, Tensor]
    ) -> tuple[Message, dict[str, Tensor]]:
        batch, _ = check_vector(x)
        started = state["powersgd_started"].to(torch.bool).unsqueeze(1)
        q0 = torch.where(started, state["powersgd_q"].to(batch), self._fresh_q(batch, rng))
        msg, q = self._power_step(batch, q0)
        return msg, {"powersgd_q": q, "powersgd_started": torch.ones_like(state["powersgd_started"])}

    def _fresh_q(self, x: Tensor, rng: Randomness) -> Tensor:
        return normal((x.shape[0], self._q_width()), rng, x.device).to(x.dtype)

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        if self._q is not None and self._q.shape[0] != x.shape[0]:
            raise ValueError(
                f"PowerSGD state is for {self._q.shape[0]} senders, got {x.shape[0]}; call reset()"
            )
        msg, self._q = self._power_step(x, self._fresh_q(x, rng) if self._q is None else self._q)
        return msg

    def _power_step(self, x: Tensor, q_all: Tensor) -> tuple[Message, Tensor]:
        """One power iteration per low-rank block from the flat warm starts ``q_all: [n, q_width]``."""
        n, d = x.shape
        check_dimension(self._blocks, d, "PowerSGD")
        ps, qs, raws = [], [], []
        qo = 0
        work = x.to(work_dtype(x.dtype))
        for b in self._blocks:
            part = work[:, b.offset : b.offset + b.numel]
            if not low_rank_pays(b, self.rank):
                raws.append(part)
                continue
            m = part.reshape(n, b.rows, b.cols)
            q = q_all[:, qo : qo + b.cols * self.rank].reshape(n, b.cols, self.rank).to(work.dtype)
            qo += b.cols * self.rank
            p_hat = torch.linalg.qr(m @ q).Q
            q = m.transpose(1, 2) @ p_hat
            ps.append(p_hat.reshape(n, -1))
            qs.append(q.reshape(n, -1))
        empty = x.new_zeros(n, 0)
        fields = {
            "p": Field(torch.cat(ps, 1).to(x.dtype) if ps else empty, Float(x.dtype)),
            "q": Field(torch.cat(qs, 1).to(x.dtype) if qs else empty, Float(x.dtype)),
            "raw": Field(torch.cat(raws, 1).to(x.dtype) if raws else empty, Float(x.dtype)),
        }
        return Message(self.name, n, d, x.dtype, fields), fields["q"].data  # type: ignore[return-value]

    def _decompress(self, msg: Message) -> Tensor:
        check_dimension(self._blocks, msg.d, "PowerSGD")
        n, r = msg.n, self.rank
        p, q, raw = (msg.get_rows(k).to(work_dtype(msg.dtype)) for k in ("p", "q", "raw"))
        low = [b for b in self._blocks if low_rank_pays(b, r)]
        expect = (
            sum(b.rows * r for b in low),
            sum(b.cols * r for b in low),
            msg.d - sum(b.numel for b in low),
        )
        if (p.shape[1], q.shape[1], raw.shape[1]) != expect:
            raise ValueError(
                f"powersgd message sizes {(p.shape[1], q.shape[1], raw.shape[1])} != expected {expect}"
            )
        out = torch.empty(n, msg.d, dtype=msg.dtype, device=p.device)
        po = qo = ro = 0
        for b in self._blocks:
            if low_rank_pays(b, r):
                pb = p[:, po : po + b.rows * r].reshape(n, b.rows, r)
                qb = q[:, qo : qo + b.cols * r].reshape(n, b.cols, r)
                out[:, b.offset : b.offset + b.numel] = (pb @ qb.transpose(1, 2)).reshape(n, -1).to(out.dtype)
                po, qo = po + b.rows * r, qo + b.cols * r
            else:
                out[:, b.offset : b.offset + b.numel] = raw[:, ro : ro + b.numel].to(out.dtype)
                ro += b.numel
        return out

    def reset(self) -> None:
        self._q = None

    def state_dict(self) -> dict[str, Any]:
        return {} if self._q is None else {"q": self._q.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) - {"q"}:
            raise ValueError(f"PowerSGD state has only the key 'q', got {sorted(state)}")
        self._q = state["q"].clone() if "q" in state else None

    def params(self) -> dict[str, object]:
        return {"rank": self.rank, "shapes": self.shapes}
