"""PowerSGD (Vogels, Karimireddy and Jaggi, 2019, Algorithm 1): rank-``r`` approximation of each layer.

For each matrix block ``M [a, b]`` of a sender's vector: ``P = M Q``, ``P_hat = orthogonalise(P)``
(reduced QR), ``Q = M^T P_hat``, and the receiver rebuilds ``P_hat Q^T``. ``Q`` is warm-started from
the previous call (kept per sender on the object; ``reset()`` forgets it), which makes one power
iteration per round track the top subspace. Error feedback is the ``ErrorFeedback`` wrapper.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators.base import check_int
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message
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
    float16/bfloat16 inputs are computed in float32 (torch has no half-precision QR on CPU; the warm
    start ``Q`` stays float32) and sent at their own precision.
    """

    name = "powersgd"

    def __init__(self, rank: int = 1, shapes: object = None) -> None:
        self.rank = check_int("rank", rank, minimum=1)
        self.shapes = parse_shapes(shapes)
        self._blocks = blocks(self.shapes)
        self._q: dict[int, Tensor] = {}

    def _compress(self, x: Tensor, rng: torch.Generator | None) -> Message:
        n, d = x.shape
        check_dimension(self._blocks, d, "PowerSGD")
        ps, qs, raws = [], [], []
        work = x.to(work_dtype(x.dtype))
        for i, b in enumerate(self._blocks):
            part = work[:, b.offset : b.offset + b.numel]
            if not low_rank_pays(b, self.rank):
                raws.append(part)
                continue
            m = part.reshape(n, b.rows, b.cols)
            q = self._q.get(i)
            if q is None:
                gen_device = rng.device if rng is not None else torch.device("cpu")
                q = torch.randn(n, b.cols, self.rank, generator=rng, device=gen_device).to(
                    x.device, work.dtype
                )
            elif q.shape[0] != n:
                raise ValueError(f"PowerSGD state is for {q.shape[0]} senders, got {n}; call reset()")
            p_hat = torch.linalg.qr(m @ q.to(work.dtype)).Q
            q = m.transpose(1, 2) @ p_hat
            self._q[i] = q
            ps.append(p_hat.reshape(n, -1))
            qs.append(q.reshape(n, -1))
        empty = x.new_zeros(n, 0)
        fields = {
            "p": Field(torch.cat(ps, 1).to(x.dtype) if ps else empty, Float(x.dtype)),
            "q": Field(torch.cat(qs, 1).to(x.dtype) if qs else empty, Float(x.dtype)),
            "raw": Field(torch.cat(raws, 1).to(x.dtype) if raws else empty, Float(x.dtype)),
        }
        return Message(self.name, n, d, x.dtype, fields)

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
        self._q.clear()

    def state_dict(self) -> dict[str, Tensor]:
        return {f"q.{i}": q.clone() for i, q in self._q.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        try:
            self._q = {int(k.split(".", 1)[1]): v.clone() for k, v in state.items()}
        except (IndexError, ValueError):
            raise ValueError(f"PowerSGD state keys must look like 'q.<block>', got {sorted(state)}") from None

    def params(self) -> dict[str, object]:
        return {"rank": self.rank, "shapes": self.shapes}
