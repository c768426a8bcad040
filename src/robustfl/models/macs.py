"""Multiply–accumulate operations (MACs) of one forward pass, counted with forward hooks.

Counted: convolutions (``B C_out H' W' C_in k_h k_w / groups``), linear layers (output entries times
``in_features``), LSTM layers (``4h(d + h)`` per step, low rank ``4r(d + h) + 8hr``, per gate
factorised) and the two attention products ``Q Kᵀ`` and ``A V`` (``2 N M d`` per sequence).
Not counted: BatchNorm, LayerNorm, activations, pooling, embedding look-ups, additions — the
convention of the MAC columns of seed 004 Tables 4.2–4.6 (which pass one 32×32×3 image, or one
token, through the network). ``count_macs`` runs the model on whatever device it lives on; on
``torch.device("meta")`` nothing is computed, only shapes, so even WideResNet-50-2 is counted in
milliseconds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robustfl.models.lowrank import LowRankLSTMLayer, LSTMLayer
from robustfl.models.transformer import MultiHeadAttention


def _conv(module: nn.Conv2d, out: Tensor) -> int:
    c_in, kh, kw = module.weight.shape[1:]
    return out.numel() * c_in * kh * kw


def _linear(module: nn.Linear, out: Tensor) -> int:
    return out.numel() * module.in_features


def _lstm(module: LSTMLayer | LowRankLSTMLayer, x: Tensor) -> int:
    steps = x.shape[0] * x.shape[1]
    d, h = module.input_size, module.hidden_size
    if isinstance(module, LowRankLSTMLayer):
        r = module.rank
        return steps * (4 * r * (d + h) + 8 * h * r)
    return steps * 4 * h * (d + h)


def count_macs(model: nn.Module, example: Tensor) -> int:
    """MACs of one forward pass of ``model`` per sample of the batch ``example`` (``[B, ...]``)."""
    if not isinstance(example, Tensor) or example.dim() < 1 or example.shape[0] < 1:
        raise ValueError("example must be a tensor batch [B, ...] with B >= 1")
    total = [0]

    def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if isinstance(module, nn.Conv2d):
            total[0] += _conv(module, out)
        elif isinstance(module, nn.Linear):
            total[0] += _linear(module, out)
        elif isinstance(module, LSTMLayer | LowRankLSTMLayer):
            total[0] += _lstm(module, args[0])
        elif isinstance(module, MultiHeadAttention):
            q, kv = args[0], args[1]
            total[0] += 2 * q.shape[0] * q.shape[1] * kv.shape[1] * q.shape[2]

    kinds = (nn.Conv2d, nn.Linear, LSTMLayer, LowRankLSTMLayer, MultiHeadAttention)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total[0] // example.shape[0]


def model_macs(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> int:
    """MACs per sample of the registered model ``name``, counted on the meta device (no compute).

    Token models (``word-lstm``, ``transformer``, ``lstm``) get a batch of integer ids; image models
    a float batch.
    """
    from robustfl.models.base import build_model

    with torch.device("meta"):
        model = build_model(name, input_shape, num_classes, **kwargs)
        embeds = any(isinstance(m, nn.Embedding) for m in model.modules())
        dtype = torch.long if embeds else torch.float32
        example = torch.zeros((1, *input_shape), dtype=dtype)
    return count_macs(model, example)
