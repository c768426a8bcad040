"""Enumerating the ``(n - f)``-row subsets that MDA and SMEA search, in lexicographic order and chunks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import torch

DEFAULT_MAX_SUBSETS = 200_000
"""Default refusal limit on ``comb(n, n - f)``: a few seconds of work for MDA/SMEA on two CPU cores."""


def check_subset_count(rule: str, n: int, f: int, max_subsets: int) -> None:
    """Raise ``ValueError`` when ``comb(n, n - f)`` exceeds ``max_subsets`` (the search would take minutes)."""
    count = math.comb(n, n - f)
    if count > max_subsets:
        raise ValueError(
            f"{rule} enumerates all comb(n, n-f) = {count:,} subsets for n={n}, f={f}, more than "
            f"max_subsets={max_subsets:,}; use a smaller n or f, raise max_subsets if you accept the time, "
            "or choose a polynomial rule"
        )


def subset_chunks(n: int, k: int, rows_per_chunk: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Yield ``LongTensor[b, k]`` blocks of all ``k``-subsets of ``range(n)``, lexicographic order."""
    combos = itertools.combinations(range(n), k)
    while True:
        block = np.fromiter(
            itertools.chain.from_iterable(itertools.islice(combos, rows_per_chunk)), dtype=np.int64
        )
        if block.size == 0:
            return
        yield torch.from_numpy(block.reshape(-1, k)).to(device)
