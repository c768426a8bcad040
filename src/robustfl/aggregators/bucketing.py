"""Bucketing, a pre-aggregator (Karimireddy, He & Jaggi, ICLR 2022)."""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import Tensor

from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators.base import AGGREGATORS, PreAggregator, check_int
from robustfl.utils import make_generator


@AGGREGATORS.register("bucketing")
class Bucketing(OneThreadWhenSmall, PreAggregator):
    """Shuffle the rows with a random permutation ``pi`` and average consecutive buckets of ``s``:
    ``out_b = mean(x_pi(bs+1), ..., x_pi(min((b+1)s, n)))``, giving ``ceil(n/s)`` rows (the last bucket
    holds the ``n mod s`` leftover rows when ``s`` does not divide ``n``). ByzFL's definition and name.

    The permutation comes from the object's own ``torch.Generator`` seeded from ``seed`` (so runs are
    reproducible and independent of the global RNG); ``reset()`` re-seeds it. A non-finite row makes
    its bucket's mean non-finite: the robust aggregator after bucketing must treat that bucket as bad.
    """

    breakdown = "any n; up to f of the ceil(n/s) buckets hold a Byzantine row (follow it with a robust rule)"

    def __init__(self, s: int = 1, seed: int = 0) -> None:
        self.s = check_int("s", s, minimum=1)
        self.seed = check_int("seed", seed)
        self._gen = make_generator(self.seed, "bucketing")

    def reset(self) -> None:
        self._gen = make_generator(self.seed, "bucketing")

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._gen.set_state(state["generator"])

    def _aggregate(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        m = -(-n // self.s)
        perm = torch.randperm(n, generator=self._gen)
        bucket = torch.empty(n, dtype=torch.long)
        bucket[perm] = _slots(n, self.s)  # row perm[i] goes to bucket i // s
        # one scatter-add pass over x (no shuffled copy); a NaN row only reaches its own bucket
        out = torch.zeros(m, x.shape[1], dtype=x.dtype, device=x.device)
        out.index_add_(0, bucket.to(x.device), x)
        last = n - (m - 1) * self.s  # the last bucket's size (s when s divides n)
        if last == self.s:
            return out.div_(self.s)
        out[:-1].div_(self.s)
        out[-1].div_(last)
        return out


@cache
def _slots(n: int, s: int) -> Tensor:
    """``i // s`` for ``i < n`` (cached: the same for every call with this ``n``; never written)."""
    return torch.arange(n) // s
