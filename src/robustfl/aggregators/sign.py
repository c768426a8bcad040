"""Majority vote of signs (signSGD with majority vote, Bernstein et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._small import OneThreadWhenSmall
from robustfl.aggregators._threads import single_thread
from robustfl.aggregators.base import AGGREGATORS


@AGGREGATORS.register("sign-majority", "majority-vote", "signsgd-mv")
class SignMajority(OneThreadWhenSmall):
    """``out = sign(sum_i sign(x_i))``, element-wise: each coordinate takes the majority sign, ``0`` on a tie.

    Output entries are in ``{-1, 0, 1}`` in the input dtype. Votes are counted as
    ``#(x_ik > 0) - #(x_ik < 0)``, so a NaN entry casts no vote and ±Inf votes like any sign; with
    fewer than half the rows Byzantine the honest majority's sign wins wherever the honest rows agree
    strongly enough (Bernstein et al. 2019, Thm. 2).
    """

    breakdown = "fewer than n/2 Byzantine rows (per-coordinate vote)"

    def _aggregate(self, x: Tensor) -> Tensor:
        return torch.sign(votes(x.detach())).to(x.dtype)


VOTE_BLOCK_NUMEL = 1 << 16
"""Votes are counted over column blocks of about this many elements (256 KiB of float32, in cache)."""


def votes(x: Tensor) -> Tensor:
    """``#(x_ik > 0) - #(x_ik < 0)`` per column, as ``sum_i sign(x_ik)`` with NaN voting 0, in ``x``'s
    floating dtype (exact: sums of at most ``n < 2^24`` terms in ``{-1, 0, 1}``).

    Over cache-sized column blocks: counting with boolean masks and integer sums over the rows ran at
    about 11 ns per element from a few million elements on (two ``[n, d]`` masks, a strided integer
    reduction), against about 1 ns this way (one thread, ``benchmarks/cliffs.py``)."""
    n, d = x.shape
    if n >= 1 << 24:  # float sums of the signs would no longer be exact
        return ((x > 0).sum(dim=0) - (x < 0).sum(dim=0)).to(x.dtype)
    width = max(1, VOTE_BLOCK_NUMEL // n)
    if width >= d:
        return torch.sign(x).nan_to_num_(0.0).sum(0)
    out = torch.empty(d, dtype=x.dtype, device=x.device)
    with single_thread(x.device):  # in-cache blocks: a second thread only adds a barrier per op
        for c in range(0, d, width):
            torch.sum(torch.sign(x[:, c : c + width]).nan_to_num_(0.0), 0, out=out[c : c + width])
    return out
