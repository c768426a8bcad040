"""The cohort's minibatch inputs, gathered chunk by chunk as an executor reads them.

A round's inputs are ``x_store[idx]`` (``idx: [m, steps, B]`` sample indices), augmented per client:
``[m, steps, B, ...]``. Gathered at once that is ``m`` clients' worth of samples, while an executor only
ever holds ``clients_per_call`` of them (one for the loop): 100 MiB for 1,000 MNIST clients at batch 32,
gigabytes for CIFAR-10 with several local steps. :class:`CohortInputs` stands in for that tensor and
gathers (and augments) only the rows an executor slices. Augmentation draws from each client's own
stream (``augment``, client id, round), so the rows are the same bits however the cohort is sliced.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.engine.augment import Augment
from robustfl.streams import Streams


class CohortInputs:
    """``x_store[idx]``, augmented, read by rows: ``inputs[a:b]`` is ``Tensor[b - a, steps, B, ...]`` and
    ``inputs[i]`` is ``Tensor[steps, B, ...]`` for the client ``ids[i]``."""

    def __init__(
        self, store: Tensor, idx: Tensor, ids: Tensor, augment: Augment, streams: Streams, round: int
    ) -> None:
        if idx.shape[0] != ids.numel():
            raise ValueError(f"idx has {idx.shape[0]} rows of sample indices for {ids.numel()} clients")
        self.store, self.idx, self.ids = store, idx, ids
        self.augment, self.streams, self.round = augment, streams, round

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.idx.shape, *self.store.shape[1:]))

    @property
    def device(self) -> torch.device:
        return self.store.device

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    def __getitem__(self, rows: int | slice) -> Tensor:
        if isinstance(rows, int):
            return self[rows : rows + 1 if rows != -1 else None][0]
        return self.augment(self.store[self.idx[rows]], self.ids[rows], self.streams, self.round)

    def gather(self) -> Tensor:
        """Every row at once (what the executors avoid)."""
        return self[:]
