"""Clipping pre-aggregators that may overwrite their input (``in_place=True``, as ByzFL's do).

A non-destructive clip reads ``x`` and writes a new ``[n, d]``; one allowed to overwrite ``x`` touches
only the rows it rescales. On model-sized messages that is the difference between one full copy and
``k`` rows (and, at a thousand clients, one fewer ``[n, d]`` buffer alive).
"""

from __future__ import annotations

import torch
from torch import Tensor


def writable(x: Tensor, in_place: bool) -> bool:
    """Whether a rule asked for ``in_place`` may write into ``x``: not when autograd tracks ``x``
    (its history would be overwritten) or ``x`` is an inference tensor."""
    return in_place and not x.requires_grad and not x.is_inference()


ROW_BY_ROW_MIN_D = 4096
"""From rows this long, the rows to rescale are rescaled one by one (a Python-level call per row is
then small against its memory); shorter rows are all multiplied in one pass (by 1 where unchanged)."""


def scale_rows_in_place(x: Tensor, scale: Tensor, keep: Tensor | None = None) -> Tensor:
    """``x_i <- scale_i x_i`` for the rows with ``scale_i != 1``, and ``x_i <- 0`` where ``keep`` (when
    given) is false; returns ``x``. From ``ROW_BY_ROW_MIN_D`` columns on only those rows are touched;
    below, every row is multiplied (``1 * v = v`` exactly, so the others keep their bits)."""
    if x.shape[1] >= ROW_BY_ROW_MIN_D:
        rows = torch.nonzero(scale != 1).flatten()
        for i, s in zip(rows.tolist(), scale.index_select(0, rows).tolist(), strict=True):
            x[i].mul_(s)
    else:
        x.mul_(scale.unsqueeze(1))
    if keep is not None and not bool(keep.all()):
        x[~keep] = 0.0
    return x
