"""Per-client minibatch sampling: client ``i``'s round-``t`` batches depend only on (seed, i, t).

Each client draws from its own partition with the generator ``streams.client("sample", i, t)``, so
its batches are the same whoever else takes part, in one process or many, and after a resume.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.streams import Streams


class ClientSampler:
    """Draws ``[m, steps, B]`` indices into the training store for the clients ``ids`` of a round.

    A client with at least ``B`` samples draws its ``B`` without replacement (a fresh random subset per
    minibatch); a smaller partition draws with replacement, so every client sends a full batch and the
    clients stack for ``vmap``.
    """

    def __init__(self, partitions: list[Tensor], streams: Streams) -> None:
        self.partitions = partitions
        self.streams = streams
        self._sizes = torch.tensor([p.numel() for p in partitions], dtype=torch.long)

    def sizes(self, ids: Tensor) -> Tensor:
        """The clients' local data sizes ``Tensor[m]``."""
        return self._sizes[ids.cpu()]

    def sample(self, ids: Tensor, round: int, steps: int, batch_size: int, *tags: object) -> Tensor:
        """``tags`` select an independent sub-stream (personalisation draws with ``"personalise"``)."""
        rows = []
        for i in ids.tolist():
            part, gen = self.partitions[i], self.streams.client("sample", i, round, *tags)
            m = part.numel()
            if m >= batch_size:
                pos = torch.stack([torch.randperm(m, generator=gen)[:batch_size] for _ in range(steps)])
            else:
                pos = torch.randint(m, (steps, batch_size), generator=gen)
            rows.append(part[pos])
        return torch.stack(rows)
