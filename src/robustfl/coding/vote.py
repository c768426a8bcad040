"""Majority vote over groups of messages that should be identical (DRACO §6.2, DETOX Alg. 6).

``majority_vote(x)`` takes ``x: Tensor[g, r, d]`` (``g`` groups of ``r`` messages) and returns per
group the value sent by a strict majority (more than ``r/2`` members) and whether one existed.
Two messages are *equal* when every coordinate satisfies ``|a - b| <= atol + rtol * max(|a|, |b|)``
(``atol = rtol = 0``: exact equality; NaN never equals anything). The returned vote is always one of
the received rows, bit for bit, so with exact equality it is the honest value itself.

Two algorithms, vectorised over groups:

* ``"boyer-moore"``: the streaming majority vote of Boyer and Moore (1991), Algorithm 5 of the
  chapter, followed by one counting pass that confirms the candidate really has a majority (the
  chapter omits it because DRACO guarantees a majority; DETOX must detect its absence). ``O(g r d)``.
* ``"pairwise"``: count, for every member, how many members equal it, and take the first member
  with the highest count. Also ``O(g r d)`` time (a loop over ``r``), ``O(g r^2)`` extra memory.

Under exact equality both return the same vote whenever a majority exists. With a tolerance
equality is not transitive, and the two may return different (but each majority-supported) rows.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

VoteMethod = Literal["boyer-moore", "pairwise"]


def check_vote_method(value: object) -> VoteMethod:
    if value not in ("boyer-moore", "pairwise"):
        raise ValueError(f"vote must be 'boyer-moore' or 'pairwise', got {value!r}")
    return value


def rows_equal(a: Tensor, b: Tensor, atol: float = 0.0, rtol: float = 0.0) -> Tensor:
    """``[...]`` bool: rows ``a[..., :]`` and ``b[..., :]`` are equal within the tolerance (broadcasts)."""
    if atol == 0.0 and rtol == 0.0:
        return (a == b).all(dim=-1)
    bound = atol + rtol * torch.maximum(a.abs(), b.abs())
    return ((a - b).abs() <= bound).all(dim=-1)


def majority_vote(
    x: Tensor, method: VoteMethod = "boyer-moore", atol: float = 0.0, rtol: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Per group of ``x: Tensor[g, r, d]``: ``(votes: Tensor[g, d], has_majority: Tensor[g] bool)``.

    ``votes[i]`` is the majority row of group ``i`` when ``has_majority[i]``, else the zero vector.
    """
    if x.dim() != 3 or 0 in x.shape:
        raise ValueError(f"majority_vote needs a non-empty Tensor[g, r, d], got {tuple(x.shape)}")
    method = check_vote_method(method)
    g, r, _ = x.shape
    if method == "boyer-moore":
        cand = x[:, 0].clone()
        count = torch.ones(g, dtype=torch.long, device=x.device)
        for i in range(1, r):
            item = x[:, i]
            empty = count == 0
            same = rows_equal(cand, item, atol, rtol)
            cand = torch.where(empty.unsqueeze(1), item, cand)
            count = torch.where(empty, 1, torch.where(same, count + 1, count - 1))
        support = rows_equal(cand.unsqueeze(1), x, atol, rtol).sum(dim=1)
        votes = cand
    else:
        counts = torch.stack([rows_equal(x[:, i : i + 1], x, atol, rtol).sum(dim=1) for i in range(r)], 1)
        support, best = counts.max(dim=1)
        votes = x[torch.arange(g, device=x.device), best]
    has = 2 * support > r
    return torch.where(has.unsqueeze(1), votes, torch.zeros_like(votes)), has
