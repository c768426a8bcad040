"""Backdoor evaluation metrics of seed 004 ch. 8, as pure functions over predicted labels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def accuracy(pred: Tensor, labels: Tensor) -> float:
    """Fraction of ``pred == labels`` (main-task accuracy on the clean test set)."""
    if pred.shape != labels.shape or pred.numel() == 0:
        raise ValueError(
            f"pred and labels must be non-empty and equally shaped, got {tuple(pred.shape)}, {tuple(labels.shape)}"
        )
    return float((pred == labels).float().mean())


def backdoor_accuracy(pred: Tensor, target: int) -> float:
    """Fraction of edge-case test inputs classified as the attacker's ``target`` (the chapter's
    'target task accuracy')."""
    if pred.numel() == 0:
        raise ValueError("backdoor_accuracy needs at least one prediction")
    return float((pred == target).float().mean())


def accuracy_parity_ratio(client_accuracies: Sequence[float] | Tensor) -> float:
    """``min_i p_i / max_i p_i`` over the clients' accuracies ``p_i`` (Zafar et al., 2017; seed 004
    Fig. 8.6): 1 when every client is served equally well, towards 0 as they diverge. All-zero
    accuracies are equally (in)accurate: 1."""
    p = torch.as_tensor(client_accuracies, dtype=torch.float64).flatten()
    if p.numel() == 0 or not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError("accuracy_parity_ratio needs a non-empty list of finite accuracies >= 0")
    top = float(p.max())
    return 1.0 if top == 0 else float(p.min()) / top
