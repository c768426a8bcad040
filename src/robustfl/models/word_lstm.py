"""The 2-layer tied LSTM language model of seed 004 ch. 4 on WikiText-2 (Table 4.12)."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models.base import MODELS
from robustfl.models.lowrank import LSTMLayer


def _positive(model: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{model}: {name} must be a positive integer, got {value!r}")
    return value


@MODELS.register("word-lstm")
class WordLSTM(nn.Module):
    """Embedding ``d`` → dropout → ``num_layers`` LSTM layers of ``h`` (dropout after each) → decoder
    ``h -> vocabulary`` whose weight is the embedding's (tied, Press and Wolf 2017).

    Input: token ids ``[B, T]``; output: next-token logits for every position, ``[B, V, T]`` (the
    class dimension second, so ``cross_entropy(logits, targets [B, T])`` works). ``input_shape`` is
    ``(T,)``; ``num_classes`` is the vocabulary size (33,278 for WikiText-2). Defaults follow
    Table 4.12: ``d = h = 1500``, 2 layers, dropout 0.65: **85,962,278** parameters with 33,278
    words (Table 4.2) — the tied decoder counts once and each LSTM layer has one bias ``[4h]``
    (``LSTMLayer``). The layers are a Python loop over time (``vmap``-safe, slower than cuDNN).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        embed_dim: int = 1500,
        hidden_size: int = 1500,
        num_layers: int = 2,
        dropout: float = 0.65,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("embed_dim", embed_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            _positive("word-lstm", name, value)
        if len(input_shape) != 1:
            raise ValueError(
                f"model 'word-lstm' reads token sequences: input_shape must be (sequence_length,), got {input_shape}"
            )
        if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
            raise ValueError(f"word-lstm: dropout must be in [0, 1), got {dropout!r}")
        if tie_weights and embed_dim != hidden_size:
            raise ValueError(
                f"word-lstm: tie_weights needs embed_dim == hidden_size, got {embed_dim} and {hidden_size}"
            )
        self.encoder = nn.Embedding(num_classes, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            LSTMLayer(embed_dim if i == 0 else hidden_size, hidden_size) for i in range(num_layers)
        )
        self.decoder = nn.Linear(hidden_size, num_classes)
        if tie_weights:
            self.decoder.weight = self.encoder.weight

    def forward(self, tokens: Tensor) -> Tensor:
        out = self.drop(self.encoder(tokens))
        for layer in self.layers:
            out = self.drop(layer(out))
        return self.decoder(out).transpose(1, 2)
