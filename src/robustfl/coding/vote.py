"""Majority vote over groups of messages that should be identical (DRACO §6.2, DETOX Alg. 6).

``majority_vote(x)`` takes ``x: Tensor[g, r, d]`` (``g`` groups of ``r`` messages) and returns per
group the value sent by a strict majority (more than ``r/2`` members) and whether one existed.
Two messages are *equal* when every coordinate satisfies ``|a - b| <= atol + rtol * max(|a|, |b|)``
(``atol = rtol = 0``: exact equality; NaN and infinite entries never equal anything, so identical
non-finite rows cannot form a majority). The returned vote is always one of
the received rows, bit for bit, so with exact equality it is the honest value itself.

Two algorithms, vectorised over groups:

* ``"boyer-moore"``: the streaming majority vote of Boyer and Moore (1991), Algorithm 5 of the
  chapter, followed by one counting pass that confirms the candidate really has a majority (the
  chapter omits it because DRACO guarantees a majority; DETOX must detect its absence). ``O(g r d)``.
* ``"pairwise"``: compare every pair of members once (``r (r - 1) / 2`` row comparisons, fewer than
  Boyer-Moore's ``2r - 1`` for ``r <= 3``) and take the first member with the largest support.

``"auto"`` (the default) takes the one with fewer comparisons: ``"pairwise"`` for ``r <= 3``,
``"boyer-moore"`` above. Under exact equality both return the same vote whenever a majority exists. With a tolerance
equality is not transitive, and the two may return different (but each majority-supported) rows.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

VoteMethod = Literal["auto", "boyer-moore", "pairwise"]


def check_vote_method(value: object) -> VoteMethod:
    if value not in ("auto", "boyer-moore", "pairwise"):
        raise ValueError(f"vote must be 'auto', 'boyer-moore' or 'pairwise', got {value!r}")
    return value


def rows_equal(a: Tensor, b: Tensor, atol: float = 0.0, rtol: float = 0.0) -> Tensor:
    """``[...]`` bool: rows ``a[..., :]`` and ``b[..., :]`` are equal within the tolerance (broadcasts).

    Computed as ``sum(max(|a - b| - bound, 0)) == 0``: a float reduction, several times faster in
    torch than ``(a == b).all(-1)``; a NaN difference (NaN or infinite entries) makes rows unequal.
    """
    diff = (a - b).abs_()
    if atol != 0.0 or rtol != 0.0:
        diff = (diff - (atol + rtol * torch.maximum(a.abs(), b.abs()))).clamp_min_(0)
    return diff.sum(dim=-1) == 0


def majority_vote(
    x: Tensor, method: VoteMethod = "auto", atol: float = 0.0, rtol: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Per group of ``x: Tensor[g, r, d]``: ``(votes: Tensor[g, d], has_majority: Tensor[g] bool)``.

    ``votes[i]`` is the majority row of group ``i`` when ``has_majority[i]``, else the zero vector.
    """
    votes, has, _ = vote_with_support(x, method, atol, rtol)
    return votes, has


def vote_with_support(
    x: Tensor, method: VoteMethod = "auto", atol: float = 0.0, rtol: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """``majority_vote`` plus ``agrees: Tensor[g, r]`` bool, which members equal their group's vote."""
    if x.dim() != 3 or 0 in x.shape:
        raise ValueError(f"majority_vote needs a non-empty Tensor[g, r, d], got {tuple(x.shape)}")
    method = check_vote_method(method)
    g, r, _ = x.shape
    rows = torch.arange(g, device=x.device)
    if method == "auto":
        method = "pairwise" if r <= 3 else "boyer-moore"
    if method == "boyer-moore":
        cand = x[:, 0].clone()
        count = torch.ones(g, dtype=torch.long, device=x.device)
        for i in range(1, r):
            empty = count == 0
            if bool(empty.any()):
                cand[empty] = x[empty, i]
            same = rows_equal(cand, x[:, i], atol, rtol)
            count = torch.where(empty, 1, torch.where(same, count + 1, count - 1))
        agrees = torch.stack([rows_equal(cand, x[:, i], atol, rtol) for i in range(r)], dim=1)
        votes = cand
    else:  # each unordered pair compared once
        eq = torch.eye(r, dtype=torch.bool, device=x.device).repeat(g, 1, 1)
        for i in range(r):
            for j in range(i + 1, r):
                eq[:, i, j] = eq[:, j, i] = rows_equal(x[:, i], x[:, j], atol, rtol)
        best = eq.sum(dim=2).max(dim=1).indices  # the first member with the largest support
        agrees = eq[rows, best]
        votes = x[rows, best]
    has = 2 * agrees.sum(dim=1) > r
    if not bool(has.all()):
        votes[~has] = 0  # a copy in both branches (clone / advanced indexing)
    return votes, has, agrees & has.unsqueeze(1)
