"""Character-level LSTM language model of seed 004 ch. 5 (FedMA on Shakespeare), Table 5.5."""

from __future__ import annotations

from torch import Tensor, nn

from robustfl.models.base import MODELS


@MODELS.register("lstm")
class CharLSTM(nn.Module):
    """Embedding → ``num_layers`` LSTM layers → linear decoder of the last hidden state.

    Input: token ids, a LongTensor ``[B, T]``; output: logits ``[B, num_classes]`` for the next token
    (Shakespeare next-character prediction; ``num_classes`` is the vocabulary size, 80 in the seed).
    Defaults follow Table 5.5: embedding 8, one LSTM layer of 256, decoder 256 → 80, i.e. 293,584
    parameters for 80 characters (Table 5.6's "original" total). ``input_shape`` is ``(T,)``, the
    sequence length; it is not needed to size the layers. ``num_layers=2`` gives the LEAF Shakespeare model.
    Parameter names follow the table (``encoder.weight``, ``lstm.weight_ih_l0``, ..., ``decoder.bias``).

    Uses the fused ``nn.LSTM`` kernel. It works under ``vmap`` + ``grad`` but has no batching rule there
    (PyTorch falls back to a per-sample loop, with a warning), and a plain loop over clients is faster:
    ``prefers_loop`` is true for this model (``benchmarks/bench_lstm_paths.py`` measures both paths).
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
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.decoder = nn.Linear(hidden_size, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        out, _ = self.lstm(self.encoder(tokens))
        return self.decoder(out[:, -1])
