"""The 6-layer encoder–decoder Transformer (Vaswani et al., 2017) of seed 004 ch. 4 (Tables 4.16–4.17)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robustfl.models.base import MODELS


class MultiHeadAttention(nn.Module):
    """``p``-head scaled dot-product attention with four bias-free ``[pd, pd]`` projections
    ``wq, wk, wv, wo`` (Table 4.16), dropout on the output, residual and LayerNorm (eps 1e-6) after."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, q: Tensor, kv: Tensor, causal: bool = False) -> Tensor:
        n, d = q.shape[1], q.shape[2]
        split = (self.heads, d // self.heads)
        qh = self.wq(q).unflatten(-1, split).transpose(1, 2)  # [B, p, N, d/p]
        kh = self.wk(kv).unflatten(-1, split).transpose(1, 2)
        vh = self.wv(kv).unflatten(-1, split).transpose(1, 2)
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(d // self.heads)
        if causal:
            future = torch.ones(n, kv.shape[1], dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        out = (scores.softmax(dim=-1) @ vh).transpose(1, 2).flatten(2)
        return self.norm(q + self.drop(self.wo(out)))


class FeedForward(nn.Module):
    """``FFN(x) = max(0, x W1 + b1) W2 + b2`` (``pd -> 4pd -> pd``), dropout, residual, LayerNorm."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.layer1 = nn.Linear(d_model, d_ff)
        self.layer2 = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.drop(self.layer2(torch.relu(self.layer1(x)))))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, heads, dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn(self.self_attention(x, x))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, heads, dropout)
        self.enc_attention = MultiHeadAttention(d_model, heads, dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout)

    def forward(self, y: Tensor, memory: Tensor) -> Tensor:
        return self.ffn(self.enc_attention(self.self_attention(y, y, causal=True), memory))


def sinusoid_table(length: int, d_model: int) -> Tensor:
    """The fixed positional encoding ``PE[t, 2i] = sin(t / 10000^(2i/d))``, ``PE[t, 2i+1] = cos(...)``."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    freq = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table.float()


@MODELS.register("transformer")
class Transformer(nn.Module):
    """Post-LayerNorm encoder–decoder Transformer: ``layers`` encoder and decoder layers, ``heads``
    heads, ``d_model`` wide, FFN ``d_ff`` (defaults N = 6, p = 8, 512, 2048, dropout 0.1: Tables
    4.10, 4.16, 4.17). One embedding matrix is shared by the source, the target and the output
    projection (§4.5.9: "weight sharing for the source and target word embedding, and ... between
    target word embedding and the last dense layer"); positional encodings are fixed sinusoids.

    Input: ``[B, 2, T]`` token ids, the source sentence and the (shifted) target sentence, both of
    length ``T`` (``input_shape = (2, T)``, no padding masks); output ``[B, V, T]`` next-token
    logits (class dimension second, for ``cross_entropy(logits, targets [B, T])``). ``num_classes``
    is the shared vocabulary size. Each stack also has one LayerNorm (eps 1e-6) on its embedded
    input. With the defaults the count is ``512 V + 44,103,680``: **48,978,432** for the
    9,521-token vocabulary of Table 4.10 (Table 4.3). The two stack LayerNorms are not in Tables
    4.16–4.17, but without them no vocabulary of 9,521 tokens reproduces the published count.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        d_model: int = 512,
        heads: int = 8,
        layers: int = 6,
        d_ff: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(input_shape) != 2 or input_shape[0] != 2:
            raise ValueError(
                f"model 'transformer' reads (source, target) token pairs: input_shape must be (2, T), got {input_shape}"
            )
        for name, value in (("d_model", d_model), ("heads", heads), ("layers", layers), ("d_ff", d_ff)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"transformer: {name} must be a positive integer, got {value!r}")
        if d_model % heads or d_model % 2:
            raise ValueError(f"transformer: d_model={d_model} must be even and divisible by heads={heads}")
        if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
            raise ValueError(f"transformer: dropout must be in [0, 1), got {dropout!r}")
        self.d_model, self.max_length = d_model, input_shape[1]
        self.embedding = nn.Embedding(num_classes, d_model)
        self.register_buffer("position", sinusoid_table(input_shape[1], d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.source_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.target_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, heads, d_ff, dropout) for _ in range(layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, heads, d_ff, dropout) for _ in range(layers))
        self.projection = nn.Linear(d_model, num_classes, bias=False)
        self.projection.weight = self.embedding.weight

    def embed(self, tokens: Tensor, norm: nn.Module) -> Tensor:
        """``LayerNorm(dropout(sqrt(pd) E[tokens] + PE))``."""
        scaled = self.embedding(tokens) * math.sqrt(self.d_model)
        position = self.position
        assert isinstance(position, Tensor)
        return norm(self.drop(scaled + position[: tokens.shape[1]]))

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 3 or tokens.shape[1] != 2:
            raise ValueError(
                f"transformer input must be [batch, 2, T] token ids, got shape {tuple(tokens.shape)}"
            )
        length = self.max_length
        if tokens.shape[2] > length:
            raise ValueError(
                f"transformer was built for sequences of {length} tokens (input_shape), got {tokens.shape[2]}"
            )
        memory = self.embed(tokens[:, 0], self.source_norm)
        for enc in self.encoder:
            memory = enc(memory)
        out = self.embed(tokens[:, 1], self.target_norm)
        for dec in self.decoder:
            out = dec(out, memory)
        return self.projection(out).transpose(1, 2)
