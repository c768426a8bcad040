"""ATOMO: variance-optimal unbiased sparsification of an atomic decomposition (seed 004, chapter 3).

For ``g = sum_i lambda_i a_i`` with unit atoms, ATOMO sends ``g_hat = sum_i (lambda_i t_i / p_i) a_i``,
``t_i ~ Bernoulli(p_i)`` independent (eq. 3.2): unbiased for any ``p`` (Lemma 3.1). Among ``p`` with
``0 < p_i <= 1`` and expected sparsity ``sum_i p_i = s`` (the budget), the second moment
``sum_i lambda_i^2 / p_i`` is minimised by the water-filling of Algorithm 1 (Theorem 3.6, eq. 3.21):
the ``n_s`` largest ``|lambda_i|`` get ``p_i = 1`` and the rest ``p_i = |lambda_i| (s - n_s) / sum_rest``,
with ``n_s`` the first count for which these are <= 1.

- ``atoms="entries"``: the standard basis (§3.3). With ``s = ||g||_1 / ||g||_2`` it is 1-bit QSGD and with
  ``s = ||g||_1 / ||g||_inf`` TernGrad (Theorem 3.7).
- ``atoms="svd"``: each layer's matrix ``X = sum sigma_i u_i v_i^T`` (spectral-ATOMO, §3.4), budget per
  layer. Conv kernels are reshaped to ``[out, in k k]`` (``layers.py``); the chapter's experiments used
  ``[x y / 2, 2 k^2]`` — any reshape is a valid atomic decomposition.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustfl.checks import check_positive
from robustfl.compressors.base import COMPRESSORS, Compressor, Field, Message, Randomness, uniform
from robustfl.compressors.codecs import Float, UInt, index_bits
from robustfl.compressors.layers import blocks, check_dimension, parse_shapes
from robustfl.compressors.quantize import work_dtype


def atomo_probabilities(lam: Tensor, budget: float) -> Tensor:
    """Algorithm 1 of seed 004 ch. 3, vectorised over rows: the ``p`` solving eq. 3.3 for each row.

    ``lam: Tensor[n, m]`` (any signs). Returns ``p`` in [0, 1] with ``sum p = min(budget, nnz)`` per row;
    zero coefficients get ``p = 0`` (§3.8, consequence 2).
    """
    a = lam.abs().double()
    m = a.shape[1]
    budget = min(float(budget), float(m))  # s >= m: keep everything (§3.8, consequence 1)
    # at most ceil(s) atoms saturate (§3.8: Algorithm 1 stops within s steps), so only the
    # ceil(s) + 1 largest |lambda| need sorting: O(m + s log s) instead of O(m log m)
    top = min(m, math.ceil(budget) + 1)
    vals, order = a.topk(top, dim=1, sorted=True)
    total = a.sum(dim=1, keepdim=True)
    suffix = total - (vals.cumsum(dim=1) - vals)  # sum_{j >= i} |lambda_j| in sorted order
    i = torch.arange(top, device=a.device, dtype=torch.double)
    passes = vals * (budget - i) <= suffix  # Algorithm 1's test at step i (s reduced by i)
    passes[:, -1] = True  # reached only when top = m, where the last step always passes
    n_s = passes.double().argmax(dim=1, keepdim=True)  # first passing step
    rest = suffix.gather(1, n_s.long()).clamp_min(torch.finfo(torch.double).tiny)
    p = (a * (budget - n_s) / rest).clamp(0.0, 1.0)
    saturated = torch.where(i < n_s, 1.0, 0.0).to(p.dtype)
    p.scatter_(1, order, torch.maximum(saturated, p.gather(1, order)))
    return torch.where(a > 0, p, 0.0)


@COMPRESSORS.register("atomo")
class ATOMO(Compressor):
    """ATOMO with sparsity budget ``budget`` (expected atoms kept per sender, or per layer for ``svd``).

    Unbiased. ``entries`` message per sender: the saturated atoms (``p = 1``) as index + exact value, the
    others as index + sign (their weight ``lambda_i / p_i`` has the same magnitude
    ``sum_rest / (s - n_s)`` for all of them, sent once), and the two counts: ``32 + 2 ceil(log2(d + 1))
    + |sat| (ceil(log2 d) + 32) + |rest| (ceil(log2 d) + 1)`` bits. ``svd`` message per sender and
    layer: for each kept atom ``(sigma_i / p_i) u_i`` and ``v_i`` at 32 bits per entry, plus the count
    of kept atoms; vector blocks raw. A sender's layer with a non-finite entry has no SVD: it sends no
    atoms for that layer (decoded as zeros).
    ``omega(d)``: the optimal ``p`` is no worse than the uniform ``p_i = s / m`` for ``m`` orthonormal
    atoms, so ``E||g_hat||^2 <= (m / s) ||g||^2`` and ``omega <= m / s - 1`` (``m = d`` for entries,
    the largest ``min(a, b)`` for svd).
    float16/bfloat16 layers are decomposed in float32 (torch has no half-precision SVD on CPU) and
    sent at their own precision.
    """

    name = "atomo"
    unbiased = True

    def __init__(self, budget: float = 1.0, atoms: str = "entries", shapes: object = None) -> None:
        self.budget = check_positive("budget", budget)
        if atoms not in ("entries", "svd"):
            raise ValueError(f"atoms must be 'entries' or 'svd', got {atoms!r}")
        self.atoms = atoms
        if atoms == "svd":
            self.shapes: list[tuple[int, ...]] | None = parse_shapes(shapes)
            self._blocks = blocks(self.shapes)
        else:  # entries need no layout: a given ``shapes`` is ignored
            self.shapes, self._blocks = None, []

    def probabilities(self, lam: Tensor) -> Tensor:
        """Variance-optimal ``p`` (Algorithm 1) for coefficient rows ``lam: Tensor[n, m]``."""
        return atomo_probabilities(lam, self.budget).to(lam.dtype)

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        return self._entries(x, rng) if self.atoms == "entries" else self._svd(x, rng)

    def _decompress(self, msg: Message) -> Tensor:
        return self._entries_back(msg) if self.atoms == "entries" else self._svd_back(msg)

    # entry-wise atoms -------------------------------------------------------------------------------
    def _entries(self, x: Tensor, rng: Randomness) -> Message:
        n, d = x.shape
        p = self.probabilities(x)
        keep = uniform((n, d), rng, x.device).to(x.dtype) < p
        sat = keep & (p >= 1)
        part = keep & (p < 1)
        # common weight |lambda_i| / p_i of the non-saturated atoms: sum_rest / (s - n_s)
        ratio = torch.where(p > 0, x.abs() / p.clamp_min(torch.finfo(x.dtype).tiny), 0.0)
        scale = torch.where(p < 1, ratio, 0.0).amax(dim=1, keepdim=True)
        ib = index_bits(d)
        sat_idx = [r.nonzero().reshape(-1) for r in sat]
        part_idx = [r.nonzero().reshape(-1) for r in part]
        fields = {
            "counts": Field(
                torch.tensor([[len(a), len(b)] for a, b in zip(sat_idx, part_idx, strict=True)]),
                UInt(index_bits(d + 1)),
            ),
            "scale": Field(scale, Float(x.dtype)),
            "sat_idx": Field(sat_idx, UInt(ib)),
            "sat_val": Field([x[i, j] for i, j in enumerate(sat_idx)], Float(x.dtype)),
            "part_idx": Field(part_idx, UInt(ib)),
            "part_sign": Field([(x[i, j] < 0).long() for i, j in enumerate(part_idx)], UInt(1)),
        }
        return Message(self.name, n, d, x.dtype, fields)

    def _entries_back(self, msg: Message) -> Tensor:
        scale = msg.get_rows("scale", 1).reshape(-1)
        counts = msg.get_rows("counts", 2)
        lists = [msg.get_list(k) for k in ("sat_idx", "sat_val", "part_idx", "part_sign")]
        out = torch.zeros(msg.n, msg.d, dtype=msg.dtype, device=scale.device)
        for i, (si, sv, pi, ps) in enumerate(zip(*lists, strict=True)):
            if (
                (si.numel(), pi.numel()) != tuple(counts[i].tolist())
                or si.numel() != sv.numel()
                or pi.numel() != ps.numel()
            ):
                raise ValueError("atomo message counts do not match its index and value lists")
            idx = torch.cat([si, pi]).long()
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= msg.d):
                raise ValueError(f"atomo message has a coordinate outside range({msg.d})")
            out[i, si.long()] = sv.to(msg.dtype)
            out[i, pi.long()] = scale[i].to(msg.dtype) * (1 - 2 * ps.to(msg.dtype))
        return out

    # singular-value atoms ---------------------------------------------------------------------------
    def _svd(self, x: Tensor, rng: Randomness) -> Message:
        n, d = x.shape
        check_dimension(self._blocks, d, "ATOMO(atoms='svd')")
        us: list[list[Tensor]] = [[] for _ in range(n)]
        vs: list[list[Tensor]] = [[] for _ in range(n)]
        counts, raws = [], []
        for b in self._blocks:
            part = x[:, b.offset : b.offset + b.numel]
            if not b.is_matrix:
                raws.append(part)
                continue
            mats = part.reshape(n, b.rows, b.cols).to(work_dtype(x.dtype))  # no half-precision SVD
            finite = torch.isfinite(mats).flatten(1).all(dim=1)  # a non-finite layer sends no atoms
            mats = torch.where(finite[:, None, None], mats, torch.zeros_like(mats))
            u, sigma, vh = torch.linalg.svd(mats, full_matrices=False)
            p = self.probabilities(sigma)
            keep = uniform(tuple(sigma.shape), rng, x.device).to(x.dtype).to(p.dtype) < p
            weight = torch.where(keep, sigma / p.clamp_min(torch.finfo(p.dtype).tiny), 0.0)
            for i in range(n):
                j = keep[i].nonzero().reshape(-1)
                us[i].append((u[i][:, j] * weight[i, j]).T.reshape(-1).to(x.dtype))
                vs[i].append(vh[i][j, :].reshape(-1).to(x.dtype))
            counts.append(keep.sum(dim=1))
        width = index_bits(max([min(b.rows, b.cols) for b in self._blocks if b.is_matrix], default=1) + 1)
        empty = x.new_zeros(n, 0)
        fields = {
            "counts": Field(torch.stack(counts, 1) if counts else empty.long(), UInt(width)),
            "u": Field([torch.cat(r) if r else x.new_zeros(0) for r in us], Float(x.dtype)),
            "v": Field([torch.cat(r) if r else x.new_zeros(0) for r in vs], Float(x.dtype)),
            "raw": Field(torch.cat(raws, 1) if raws else empty, Float(x.dtype)),
        }
        return Message(self.name, n, d, x.dtype, fields)

    def _svd_back(self, msg: Message) -> Tensor:
        check_dimension(self._blocks, msg.d, "ATOMO(atoms='svd')")
        n = msg.n
        mats = [b for b in self._blocks if b.is_matrix]
        counts = msg.get_rows("counts", len(mats)).long()
        raw = msg.get_rows("raw").to(msg.dtype)
        us, vs = msg.get_list("u"), msg.get_list("v")
        if raw.shape[1] != msg.d - sum(b.numel for b in mats):
            raise ValueError("atomo svd message has the wrong number of raw values")
        out = torch.empty(n, msg.d, dtype=msg.dtype, device=raw.device)
        for i in range(n):
            need_u = sum(int(c) * b.rows for c, b in zip(counts[i], mats, strict=True))
            need_v = sum(int(c) * b.cols for c, b in zip(counts[i], mats, strict=True))
            if us[i].numel() != need_u or vs[i].numel() != need_v:
                raise ValueError("atomo svd message vector lengths do not match its atom counts")
            uo = vo = ro = k = 0
            for b in self._blocks:
                if not b.is_matrix:
                    out[i, b.offset : b.offset + b.numel] = raw[i, ro : ro + b.numel]
                    ro += b.numel
                    continue
                c = int(counts[i, k])
                k += 1
                ub = us[i][uo : uo + c * b.rows].reshape(c, b.rows).to(work_dtype(msg.dtype))
                vb = vs[i][vo : vo + c * b.cols].reshape(c, b.cols).to(work_dtype(msg.dtype))
                out[i, b.offset : b.offset + b.numel] = (ub.T @ vb).reshape(-1).to(msg.dtype)
                uo, vo = uo + c * b.rows, vo + c * b.cols
        return out

    def omega(self, d: int) -> float:
        atoms = (
            d
            if self.atoms == "entries"
            else max((min(b.rows, b.cols) for b in self._blocks if b.is_matrix), default=1)
        )
        return max(0.0, atoms / self.budget - 1.0)

    def params(self) -> dict[str, object]:
        return {"budget": self.budget, "atoms": self.atoms, "shapes": self.shapes}
