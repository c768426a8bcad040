"""DRACO's cyclic code (Chen et al., ICML 2018; seed 004 §6.2, Algorithm 4, Lemmas 6.8-6.9, Thm 6.10).

Worker ``j`` computes the ``2s + 1`` cyclically consecutive partitions ``j, j+1, ..., j+2s (mod P)``
and sends the complex combination ``z_j = sum_k W[k, j] g_k``. Each worker is tied to a ``P``-th
root of unity ``x_j``; with ``C[l, j] = x_j^l / sqrt(P)`` (a column-permuted IDFT matrix, unitary),
``C_L`` its first ``P - 2s`` rows and ``C_R`` the last ``2s``, row ``k`` of ``W`` is
``[q_k 1] C_L``: the monic polynomial of degree ``P - 2s - 1`` vanishing at the workers that do not
compute ``g_k``, evaluated at every ``x_j`` (§6.2's construction, solved in closed form):

    W[k, j] = sqrt(P) x_j^{-1} / prod_{t in T_k, t != j} (x_j - x_t)   for j in T_k, else 0,

where ``T_k`` are the ``2s + 1`` workers computing ``g_k``. Then ``R = G W + N`` and, since
``C_L C_R^H = 0``, ``R C_R^H = N C_R^H`` (Lemma 6.14): the syndromes see only the adversaries.

**Decoder** (Algorithm 4): project ``R`` with random ``f ~ N(1, I_d)`` (Lemma 6.13), form the ``2s``
syndromes, find the locator polynomial whose roots are the adversaries' ``conj(x_j)`` (Lemma 6.15),
exclude the ``s`` workers where it is smallest, solve ``W_{., U} b = 1_P`` (Lemma 6.8) through
``C_L[:, U] b = e_last`` and return ``Re(R_{., U} b) / P``.

Numerical choices (float64/complex128 throughout; each measured in docs/coding.md):

* ``stride``: worker ``j`` gets ``x_j = exp(2 pi i a j / P)`` with ``gcd(a, P) = 1``. ``a = 1`` is the
  chapter's matrix exactly; its ``2s + 1`` nodes per row sit next to each other on the circle, so
  ``|W|`` grows like ``prod 1/(2 sin(pi i / P))`` (1e12 at ``P = 100, s = 10``) and recovery fails in
  float64. ``stride="auto"`` picks the ``a`` that spreads every window around the circle (smallest
  ``max |W|``); it permutes the IDFT's columns, so every lemma above holds unchanged.
* The locator is solved as the null vector (SVD) of the stacked linear-prediction equations of
  ``projections`` independent projections, not as an ``s x s`` solve on one (singular when fewer
  than ``s`` workers deviate), and evaluated at the ``P`` nodes instead of extending the recursion
  over ``P - 2s`` steps (which amplifies rounding errors). Excluding ``s`` workers even when fewer
  deviate is harmless: any ``P - 2s`` honest columns decode (Lemma 6.8).
* Non-finite messages (and messages whose projection overflows) are excluded up front; their
  columns are zeroed before the syndromes, which turns them into ordinary errors at known places.
* ``residual`` in the report: the syndromes left unexplained by the ``s`` excluded workers, relative
  to the norm of the projected messages; ~1e-16 when at most ``s`` deviate, the size of the
  unexplained deviation (decoding error) when more did.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustfl.checks import check_int
from robustfl.coding.base import CODINGS, CodedScheme


def window_log_gain(P: int, s: int, a: int) -> float:
    """``log max_j |W[k, j]| - log sqrt(P)`` for stride ``a``: the worst ``-sum log|x_j - x_t|``."""
    off = torch.arange(2 * s + 1, dtype=torch.float64)
    diff = off[:, None] - off[None, :]
    dist = 2 * torch.sin(math.pi * a * diff / P).abs()
    logs = -torch.log(dist + torch.eye(2 * s + 1, dtype=torch.float64))  # the diagonal adds log 1 = 0
    return float(logs.sum(dim=1).max())


def auto_stride(P: int, s: int) -> int:
    """The stride ``a`` in ``[1, P/2]``, coprime to ``P``, with the smallest ``max |W|`` (lowest on ties)."""
    cands = [a for a in range(1, max(P // 2, 1) + 1) if math.gcd(a, P) == 1]
    return min(cands, key=lambda a: (round(window_log_gain(P, s, a), 9), a))


@CODINGS.register("draco-cyclic", "cyclic")
class DracoCyclic(CodedScheme):
    """Cyclic code (see the module docstring): tolerates any ``s`` adversaries among ``P >= 2s + 1``.

    ``stride``: ``"auto"`` (default, well conditioned) or an integer ``a`` coprime to ``P`` (``1`` is
    the chapter's IDFT ordering). ``projections``: random projections ``f`` per decode (the chapter
    uses one; more make the locator robust to adversaries of very different magnitudes).
    Messages are ``[Re z_j, Im z_j]``: ``2d`` float64 values per worker.
    """

    def __init__(self, workers: int, s: int = 1, stride: int | str = "auto", projections: int = 4) -> None:
        self.workers = check_int("workers", workers, 1)
        self.s = check_int("s", s, 0)
        if self.workers < 2 * self.s + 1:
            raise ValueError(
                f"draco-cyclic needs P >= r = 2s + 1 workers (Thm 6.5: every gradient on 2s + 1 "
                f"workers); got P={self.workers}, s={self.s}, r={2 * self.s + 1}"
            )
        if stride == "auto":
            self.stride = auto_stride(self.workers, self.s)
        else:
            self.stride = check_int("stride", stride, 1)
            if math.gcd(self.stride, self.workers) != 1:
                raise ValueError(f"stride must be coprime to P={self.workers}, got {stride}")
        self.projections = check_int("projections", projections, 1)
        self.per_worker = 2 * self.s + 1
        P = self.workers
        j = torch.arange(P, dtype=torch.float64)
        self._x = torch.polar(torch.ones(P, dtype=torch.float64), 2 * math.pi * ((self.stride * j) % P) / P)
        self._coef = self._build_coefficients()
        powers = torch.arange(P, dtype=torch.float64).to(torch.complex128)
        self._C = self._x.unsqueeze(0) ** powers.unsqueeze(1) / math.sqrt(P)  # C[l, j] = x_j^l / sqrt(P)
        self._n_low = P - 2 * self.s

    def _build_coefficients(self) -> Tensor:
        """``coef[j, i] = W[(j + i) mod P, j] = sqrt(P) x_j^{-1} / prod_{u=i-2s..i, u != 0} (x_j - x_{j+u})``:
        worker ``j``'s weight on its ``i``-th partition (``T_{j+i}`` are workers ``j+i-2s .. j+i``)."""
        P, s, x = self.workers, self.s, self._x
        offsets = torch.arange(-2 * s, 2 * s + 1)
        diffs = x.unsqueeze(1) - x[(torch.arange(P).unsqueeze(1) + offsets) % P]  # [P, 4s + 1]
        diffs[:, 2 * s] = 1  # u = 0: the worker itself is not a factor
        prods = torch.stack([diffs[:, i : i + 2 * s + 1].prod(dim=1) for i in range(2 * s + 1)], dim=1)
        return math.sqrt(P) / x.unsqueeze(1) / prods

    def params(self) -> dict[str, object]:
        return {"workers": self.workers, "s": self.s, "stride": self.stride, "projections": self.projections}

    def assignment(self) -> list[list[int]]:
        P, r = self.workers, self.per_worker
        return [[(j + i) % P for i in range(r)] for j in range(P)]

    def coefficients(self) -> Tensor:
        return self._coef

    def encoding_matrix(self) -> Tensor:
        """``W: Tensor[P, P]`` complex, ``W[k, j]`` = worker ``j``'s weight on gradient ``k``."""
        W = torch.zeros(self.workers, self.workers, dtype=torch.complex128)
        for j, parts in enumerate(self.assignment()):
            W[parts, j] = self._coef[j]
        return W

    def _decode(
        self, received: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, tuple[int, ...], int, float | None]:
        if received.shape[1] % 2:
            raise ValueError(
                f"draco-cyclic messages are [Re z, Im z] of even length 2d, got {received.shape[1]}"
            )
        dev = received.device
        R = received.to(torch.float64)
        d = R.shape[1] // 2
        re, im = R[:, :d], R[:, d:]
        gen_dev = generator.device if generator is not None else torch.device("cpu")
        F = torch.randn(self.projections, d, generator=generator, dtype=torch.float64, device=gen_dev)
        F = (F + 1).to(dev)  # f ~ N(1, I_d), one per projection (Lemma 6.13)
        Y = torch.complex(F @ re.T, F @ im.T).cpu()  # [k, P]
        bad = ~torch.isfinite(Y).all(dim=0)
        Y[:, bad] = 0
        excluded, located, residual = self._locate(Y, bad)
        U = [j for j in range(self.workers) if j not in excluded]
        b, solvable = self._weights(U)
        return (
            self._recover(re, im, U, b.to(dev), bool(bad.any())),
            located,
            0,
            residual if solvable else float("inf"),
        )

    def _locate(self, Y: Tensor, bad: Tensor) -> tuple[set[int], tuple[int, ...], float]:
        """The workers to exclude (the non-finite ones and the ``s`` smallest locator values), those
        that really deviate (for the report) and the relative syndrome residual."""
        s, excluded = self.s, set(torch.nonzero(bad).flatten().tolist())
        if s == 0:
            return excluded, tuple(sorted(excluded)), 0.0
        C_R = self._C[self._n_low :]
        syn = Y @ C_R.conj().T  # [k, 2s]: h_{P-2s..P-1} per projection (Lemma 6.14: only N counts)
        rows = torch.stack([syn[:, l : l + s + 1] for l in range(s)], dim=1).reshape(-1, s + 1)
        theta = torch.linalg.svd(rows)[2][-1].conj()  # linear prediction: sum_u theta_u h_{l+u} = 0
        z = self._x.conj()
        score = sum(theta[u] * z**u for u in range(s + 1)).abs()  # the locator's roots: adversaries
        score[bad] = -1.0
        excluded |= set(torch.argsort(score)[: max(s, len(excluded))].tolist())
        V = sorted(excluded)
        A = C_R[:, V].conj()  # [2s, |V|]: the syndromes of unit errors at V
        gamma = torch.linalg.lstsq(A, syn.T).solution  # [|V|, k]: the deviations' projections
        scale = float(torch.linalg.vector_norm(Y))
        fit = float(torch.linalg.vector_norm(syn.T - A @ gamma))
        noise = 1e-9 * float(torch.linalg.vector_norm(Y, dim=0).max())
        size = torch.linalg.vector_norm(gamma, dim=1).tolist()
        located = tuple(v for v, g in zip(V, size, strict=True) if g > noise or bool(bad[v]))
        return excluded, located, fit / scale if scale > 0 else fit

    def _weights(self, U: list[int]) -> tuple[Tensor, bool]:
        """``b`` with ``W_{., U} b = 1_P``: the min-norm solution of ``C_L[:, U] b = e_last`` (Lemma
        6.8); least squares (and ``False``) when fewer than ``P - 2s`` workers remain."""
        CLU = self._C[: self._n_low, U]
        e = torch.zeros(self._n_low, dtype=torch.complex128)
        e[-1] = 1
        if len(U) >= self._n_low:
            return CLU.conj().T @ torch.linalg.solve(CLU @ CLU.conj().T, e), True
        return torch.linalg.pinv(CLU) @ e, False

    def _recover(self, re: Tensor, im: Tensor, U: list[int], b: Tensor, any_bad: bool) -> Tensor:
        """``Re(R_{., U} b) / P``, the mean partition gradient."""
        idx = torch.tensor(U, device=re.device)
        if any_bad:  # 0 * inf = NaN: drop the non-finite rows before combining
            out = b.real @ re.index_select(0, idx) - b.imag @ im.index_select(0, idx)
        else:  # zero weights off U, without a gathered copy of R
            full = torch.zeros(self.workers, dtype=torch.complex128, device=re.device)
            full[idx] = b
            out = full.real @ re - full.imag @ im
        return out / self.workers
