"""Majority vote of signs (signSGD with majority vote, Bernstein et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.aggregators._small import OneThreadWhenSmall
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
        votes = (x > 0).sum(dim=0) - (x < 0).sum(dim=0)
        return torch.sign(votes).to(x.dtype)
