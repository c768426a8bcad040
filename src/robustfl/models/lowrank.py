"""PUFFERFISH low-rank layers (Wang, Agarwal and Papailiopoulos, MLSys 2021; seed 004 ch. 4, §4.1).

Each full-rank weight ``W`` is replaced by two trainable factors of rank ``r``. Naming follows the
chapter's tables (``conv_u``/``conv_v``, Table 4.13): ``u`` is the factor that meets the input first,
``v`` the one that produces the output, so in PyTorch's ``[out, in]`` convention
``W ≈ v.weight @ u.weight``.

- ``LowRankLinear``: ``x -> v(u(x))``, ``u: in -> r`` (no bias), ``v: r -> out`` (the layer's bias):
  ``r (m + n)`` weights instead of ``m n`` (Table 4.1).
- ``LowRankConv2d``: ``u`` = ``c_in -> r`` with the ``k x k`` kernel, stride and padding of the layer
  (no bias), then ``v`` = a ``1 x 1`` convolution ``r -> c_out`` (the layer's bias):
  ``c_in r k^2 + r c_out`` weights (§4.1.2). No BatchNorm between the two: the network's BN after the
  layer stays where it was (the chapter's parameter counts, Tables 4.4–4.5, hold only this way).
- ``LSTMLayer`` / ``LowRankLSTMLayer``: eq. 4.1 / eq. 4.2, each of the eight gate matrices
  ``W_i{i,f,g,o} [h, d]`` and ``W_h{i,f,g,o} [h, h]`` factorised separately with rank ``r``
  (Table 4.12): ``4 (d r + r h) + 4 (h r + r h) = 4dr + 12hr`` weights instead of ``4 (dh + h^2)``.

``rank_for(rows, cols, ratio)`` is the chapter's rank rule: ``r = ratio * min(rows, cols)`` of the
unrolled matrix (§4.3.1: "for a convolution layer with an initial rank of 64, r = 64 x 0.25 = 16").
``svd_factors`` is Algorithm 2's initialisation: ``W = Ũ Σ Ṽᵀ``, left factor ``Ũ_r Σ_r^½``, right factor
``Σ_r^½ Ṽ_rᵀ``, the best rank-``r`` approximation of ``W`` (Eckart–Young).
All layers are plain tensor maths (no in-place updates, no fused kernels), so they run under
``torch.func.vmap`` + ``grad``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def rank_for(rows: int, cols: int, ratio: float) -> int:
    """``max(1, floor(ratio * min(rows, cols)))``: the rank of a layer whose unrolled weight is ``rows x cols``."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ValueError(f"rank_ratio must be a number in (0, 1], got {ratio!r}")
    return max(1, math.floor(ratio * min(rows, cols) + 1e-9))


def svd_factors(matrix: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Algorithm 2 of seed 004 ch. 4: ``matrix [a, b] = P Σ Qᵀ`` -> ``(P_r Σ_r^½ [a, r], Σ_r^½ Q_rᵀ [r, b])``.

    Their product is the best rank-``r`` approximation of ``matrix`` in Frobenius and spectral norm.
    Computed in ``matrix``'s precision (float32 for half types) and returned in its dtype.
    """
    if matrix.dim() != 2:
        raise ValueError(f"svd_factors needs a matrix, got shape {tuple(matrix.shape)}")
    if not 1 <= rank <= min(matrix.shape):
        raise ValueError(
            f"rank must be in [1, {min(matrix.shape)}] for a {tuple(matrix.shape)} matrix, got {rank}"
        )
    work = matrix.detach()
    work = work.float() if work.dtype in (torch.float16, torch.bfloat16) else work
    p, sigma, qh = torch.linalg.svd(work, full_matrices=False)
    root = sigma[:rank].sqrt()
    left = p[:, :rank] * root
    right = root[:, None] * qh[:rank]
    return left.to(matrix.dtype), right.to(matrix.dtype)


class LowRankLinear(nn.Module):
    """``y = v(u(x))`` with ``u.weight [r, in]`` and ``v.weight [out, r]`` (+ ``v.bias [out]``)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.u = nn.Linear(in_features, rank, bias=False)
        self.v = nn.Linear(rank, out_features, bias=bias)

    @classmethod
    def from_full(cls, layer: nn.Linear, rank: int, svd: bool = True) -> LowRankLinear:
        """The rank-``rank`` version of ``layer``; ``svd=True`` sets the factors by Algorithm 2."""
        out = cls(layer.in_features, layer.out_features, rank, bias=layer.bias is not None)
        out.to(device=layer.weight.device, dtype=layer.weight.dtype)
        if svd:
            left, right = svd_factors(layer.weight, rank)
            with torch.no_grad():
                out.u.weight.copy_(right)
                out.v.weight.copy_(left)
        if layer.bias is not None:
            with torch.no_grad():
                out.v.bias.copy_(layer.bias)
        return out

    def full_weight(self) -> Tensor:
        """The product ``v.weight @ u.weight`` (``[out, in]``)."""
        return self.v.weight @ self.u.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.v(self.u(x))


class LowRankConv2d(nn.Module):
    """``k x k`` convolution ``c_in -> r`` (``u``) followed by a ``1 x 1`` convolution ``r -> c_out`` (``v``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        rank: int,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.rank = rank
        self.u = nn.Conv2d(in_channels, rank, kernel_size, stride=stride, padding=padding, bias=False)
        self.v = nn.Conv2d(rank, out_channels, 1, bias=bias)

    @classmethod
    def from_full(cls, layer: nn.Conv2d, rank: int, svd: bool = True) -> LowRankConv2d:
        """The rank-``rank`` version of ``layer`` (groups = 1, dilation = 1, numeric padding only).

        The SVD is of the unrolled weight ``[c_out, c_in k k]`` (§4.1.2: each filter is a linear
        combination of ``r`` basis filters).
        """
        if layer.groups != 1 or layer.dilation != (1, 1) or isinstance(layer.padding, str):
            raise ValueError("LowRankConv2d.from_full supports groups=1, dilation=1 and numeric padding only")
        c_out, c_in, kh, kw = layer.weight.shape
        out = cls(
            c_in,
            c_out,
            (kh, kw),
            rank,
            stride=layer.stride,  # type: ignore[arg-type]
            padding=layer.padding,  # type: ignore[arg-type]
            bias=layer.bias is not None,
        )
        out.to(device=layer.weight.device, dtype=layer.weight.dtype)
        if svd:
            left, right = svd_factors(layer.weight.reshape(c_out, -1), rank)
            with torch.no_grad():
                out.u.weight.copy_(right.reshape(rank, c_in, kh, kw))
                out.v.weight.copy_(left.reshape(c_out, rank, 1, 1))
        if layer.bias is not None:
            with torch.no_grad():
                assert out.v.bias is not None
                out.v.bias.copy_(layer.bias)
        return out

    def full_weight(self) -> Tensor:
        """The equivalent full kernel ``[c_out, c_in, k, k]``."""
        v = self.v.weight.flatten(1)
        return (v @ self.u.weight.flatten(1)).reshape(v.shape[0], *self.u.weight.shape[1:])

    def forward(self, x: Tensor) -> Tensor:
        return self.v(self.u(x))


class LSTMLayer(nn.Module):
    """One LSTM layer, eq. 4.1: ``weight_ih [4h, d]``, ``weight_hh [4h, h]``, gates ordered ``i, f, g, o``.

    One bias ``[4h]`` per layer: eq. 4.1's ``b_i* + b_h*`` always appear as a sum, so one vector is
    the identifiable parameter (PyTorch's ``nn.LSTM`` keeps both; the WikiText-2 count of Table 4.2,
    85,962,278, holds with one). Input ``[B, T, d]`` -> output ``[B, T, h]``; a Python loop over time,
    so it runs under ``vmap``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))

    def input_part(self, x: Tensor) -> Tensor:
        """``W_i x_t + b`` for all steps at once: ``[B, T, 4h]``."""
        return F.linear(x, self.weight_ih, self.bias)

    def hidden_part(self, h: Tensor) -> Tensor:
        """``W_h h_{t-1}``: ``[B, 4h]``."""
        return F.linear(h, self.weight_hh)

    def forward(self, x: Tensor) -> Tensor:
        return _run_lstm(self, x)


class LowRankLSTMLayer(nn.Module):
    """Eq. 4.2: every gate matrix ``W_{i,h}{i,f,g,o}`` replaced by its own rank-``r`` product.

    ``ih_u [4, r, d]`` and ``ih_v [4, h, r]`` (input-hidden), ``hh_u [4, r, h]`` and ``hh_v [4, h, r]``
    (hidden-hidden), one bias ``[4h]``: ``4 (d r + r h) + 4 (h r + r h) = 4dr + 12hr`` weights
    (Table 4.1, §4.5.2).
    """

    def __init__(self, input_size: int, hidden_size: int, rank: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.rank = input_size, hidden_size, rank
        d, h, r = input_size, hidden_size, rank
        self.ih_u = nn.Parameter(torch.empty(4, r, d).uniform_(-1 / math.sqrt(d), 1 / math.sqrt(d)))
        self.ih_v = nn.Parameter(torch.empty(4, h, r).uniform_(-1 / math.sqrt(r), 1 / math.sqrt(r)))
        self.hh_u = nn.Parameter(torch.empty(4, r, h).uniform_(-1 / math.sqrt(h), 1 / math.sqrt(h)))
        self.hh_v = nn.Parameter(torch.empty(4, h, r).uniform_(-1 / math.sqrt(r), 1 / math.sqrt(r)))
        self.bias = nn.Parameter(torch.empty(4 * h).uniform_(-1 / math.sqrt(h), 1 / math.sqrt(h)))

    @classmethod
    def from_full(cls, layer: LSTMLayer, rank: int, svd: bool = True) -> LowRankLSTMLayer:
        """The rank-``rank`` version of ``layer``: Algorithm 2 on each of its eight gate matrices."""
        d, h = layer.input_size, layer.hidden_size
        out = cls(d, h, rank).to(device=layer.weight_ih.device, dtype=layer.weight_ih.dtype)
        with torch.no_grad():
            out.bias.copy_(layer.bias)
            if svd:
                for name, weight in (("ih", layer.weight_ih), ("hh", layer.weight_hh)):
                    for gate, block in enumerate(weight.reshape(4, h, -1)):
                        left, right = svd_factors(block, rank)
                        getattr(out, f"{name}_u")[gate].copy_(right)
                        getattr(out, f"{name}_v")[gate].copy_(left)
        return out

    def full_weights(self) -> tuple[Tensor, Tensor]:
        """The equivalent ``(weight_ih [4h, d], weight_hh [4h, h])``."""
        return (
            (self.ih_v @ self.ih_u).reshape(4 * self.hidden_size, -1),
            (self.hh_v @ self.hh_u).reshape(4 * self.hidden_size, -1),
        )

    @staticmethod
    def _gates(u: Tensor, v: Tensor, x: Tensor) -> Tensor:
        """``x [..., n] -> [..., 4h]``: per gate ``v_g (u_g x)``."""
        z = F.linear(x, u.reshape(-1, u.shape[-1]))  # [..., 4r]
        z = z.unflatten(-1, (4, u.shape[1]))  # [..., 4, r]
        return torch.einsum("...gr,ghr->...gh", z, v).flatten(-2)

    def input_part(self, x: Tensor) -> Tensor:
        return self._gates(self.ih_u, self.ih_v, x) + self.bias

    def hidden_part(self, h: Tensor) -> Tensor:
        return self._gates(self.hh_u, self.hh_v, h)

    def forward(self, x: Tensor) -> Tensor:
        return _run_lstm(self, x)


def _run_lstm(layer: LSTMLayer | LowRankLSTMLayer, x: Tensor) -> Tensor:
    """The recurrence of eq. 4.1 from zero states over ``x [B, T, d]``; returns ``[B, T, h]``."""
    if x.dim() != 3:
        raise ValueError(f"LSTM layers read [batch, time, features], got shape {tuple(x.shape)}")
    pre = layer.input_part(x)
    h = x.new_zeros(x.shape[0], layer.hidden_size)
    c = torch.zeros_like(h)
    outs = []
    for t in range(x.shape[1]):
        i, f, g, o = (pre[:, t] + layer.hidden_part(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=1)
