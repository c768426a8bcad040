"""Character-level LSTM language model of seed 004 ch. 5 (FedMA on Shakespeare), Table 5.5."""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, nn

from robustfl.models.base import MODELS


class LSTMLayer(nn.Module):
    """One LSTM layer written as plain tensor algebra, so ``torch.func.vmap`` batches it natively.

    Same parameters, gate order (input, forget, cell, output) and initialisation as ``nn.LSTM``:
    ``i, f, g, o = split(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)``, ``c' = σ(f) c + σ(i) tanh(g)``,
    ``h' = σ(o) tanh(c')``. (``nn.LSTM``'s fused kernel has no vmap batching rule and falls back to a
    slow per-sample loop.)
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [B, T, input]`` -> hidden states ``[B, T, hidden]``."""
        h = x.new_zeros(x.shape[0], self.hidden_size)
        c = h
        inputs = x @ self.weight_ih.T + self.bias_ih
        outputs = []
        for t in range(x.shape[1]):
            i, f, g, o = (inputs[:, t] + h @ self.weight_hh.T + self.bias_hh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


@MODELS.register("lstm")
class CharLSTM(nn.Module):
    """Embedding → ``num_layers`` LSTM layers → linear decoder of the last hidden state.

    Input: token ids, a LongTensor ``[B, T]``; output: logits ``[B, num_classes]`` for the next token
    (Shakespeare next-character prediction; ``num_classes`` is the vocabulary size, 80 in the seed).
    Defaults follow Table 5.5: embedding 8, one LSTM layer of 256, decoder 256 → 80, i.e. 293,584
    parameters for 80 characters (Table 5.6's "original" total). ``input_shape`` is ``(T,)``, the
    sequence length; it is not needed to size the layers. ``num_layers=2`` gives the LEAF Shakespeare model.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        embed_dim: int = 8,
        hidden_size: int = 256,
        num_layers: int = 1,
        vocab_size: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("embed_dim", embed_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"lstm: {name} must be a positive integer, got {value!r}")
        if len(input_shape) != 1:
            raise ValueError(
                f"model 'lstm' reads token sequences: input_shape must be (sequence_length,), got {input_shape}"
            )
        self.encoder = nn.Embedding(vocab_size or num_classes, embed_dim)
        sizes = [embed_dim] + [hidden_size] * num_layers
        self.lstm = nn.ModuleList(LSTMLayer(a, b) for a, b in pairwise(sizes))
        self.decoder = nn.Linear(hidden_size, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.encoder(tokens)
        for layer in self.lstm:
            h = layer(h)
        return self.decoder(h[:, -1])
