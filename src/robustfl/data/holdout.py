"""Per-client held-out data: each client's partition split into its own train and test samples.

``client_holdout(parts, fraction, generator)`` moves ``max(1, round(fraction * m_i))`` random samples of
client ``i``'s ``m_i`` (at most ``m_i - 1``: every client keeps a training sample) into its test split.
The test split follows the client's own distribution, so accuracy on it is that client's accuracy, the
quantity personalisation improves (per-client accuracy in Chayti et al., arXiv:2111.05968, and the
personalised FL literature). The split is uniform within the partition (not stratified by label): a
client's rare labels may land on either side.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.checks import check_fraction


def client_holdout(
    parts: list[Tensor], fraction: float, generator: torch.Generator
) -> tuple[list[Tensor], list[Tensor]]:
    """``(train_parts, test_parts)``: client ``i``'s indices split into disjoint train and test sets.

    ``fraction = 0`` returns the partitions unchanged and empty test sets (no draw is made).
    """
    fraction = check_fraction("client_test_fraction", fraction, upper_open=True)
    if fraction == 0:
        return list(parts), [p[:0] for p in parts]
    train, test = [], []
    for i, part in enumerate(parts):
        m = part.numel()
        if m < 2:
            raise ValueError(
                f"client {i} holds {m} sample(s); a held-out split needs at least 2 per client "
                "(raise data.partition_params.min_size, use fewer clients, or set client_test_fraction = 0)"
            )
        k = min(m - 1, max(1, round(fraction * m)))
        perm = part[torch.randperm(m, generator=generator)]
        test.append(perm[:k].sort().values)
        train.append(perm[k:].sort().values)
    return train, test
