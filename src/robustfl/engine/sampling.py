"""Per-client minibatch sampling: each client draws from its own partition with its own generator."""

from __future__ import annotations

import torch
from torch import Tensor


class ClientSampler:
    """Draws ``[n, steps, B]`` indices: row ``i`` from ``partitions[i]`` with generator ``generators[i]``.

    A client with at least ``B`` samples draws its ``B`` without replacement (a fresh random subset per
    minibatch); a smaller partition draws with replacement, so every client still sends a full batch
    and the clients can be stacked for ``vmap``. Client ``i``'s draws depend only on its own generator,
    so the vectorised and the loop path, and a resumed run, see the same batches.
    """

    def __init__(self, partitions: list[Tensor], generators: list[torch.Generator]) -> None:
        self.partitions = partitions
        self.generators = generators

    def sample(self, steps: int, batch_size: int) -> Tensor:
        rows = []
        for part, gen in zip(self.partitions, self.generators, strict=True):
            m = part.numel()
            if m >= batch_size:
                picks = [torch.randperm(m, generator=gen)[:batch_size] for _ in range(steps)]
                pos = torch.stack(picks)
            else:
                pos = torch.randint(m, (steps, batch_size), generator=gen)
            rows.append(part[pos])
        return torch.stack(rows)
