"""DETOX (Rajput, Wang, Charles and Papailiopoulos, NeurIPS 2019; seed 004 ch. 7, Algorithms 6-7).

``P`` workers are split once, at random, into ``P/r`` node groups of ``r`` (odd); the members of a
group compute the same gradient (Algorithm 6), so the server can take a majority vote per group
(no majority: the zero vector). The votes then go through HIER-AGGR (Algorithm 7): a fresh random
partition into ``k`` vote groups, ``A_0`` on each group, ``A_1`` across the ``k`` results.

Here group ``l`` is assigned the ``r`` partitions ``l r, ..., l r + r - 1`` of the round's
minibatch (``B = P`` partitions, as the DRACO schemes) and each member sends their mean: the
chapter's ``g_j`` of Eq. 7.2 over ``b r / p`` samples, so the redundancy is ``r``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from robustfl import aggregators
from robustfl.aggregators.base import Aggregator
from robustfl.checks import check_int, check_positive
from robustfl.coding.base import CODINGS, CodedScheme
from robustfl.coding.repetition import deviating_workers
from robustfl.coding.vote import VoteMethod, check_vote_method, vote_with_support
from robustfl.utils import make_generator

AggregatorSpec = str | Aggregator


def build_aggregator(role: str, spec: AggregatorSpec, params: Mapping[str, Any] | None) -> Aggregator:
    """An aggregator from a registry name plus parameters, or an instance (then ``params`` must be empty)."""
    if isinstance(spec, Aggregator):
        if params:
            raise ValueError(f"{role}_params must be empty when {role} is an aggregator instance")
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"{role} must be an aggregator name or instance, got {spec!r}")
    return aggregators.get(spec, **dict(params or {}))


def split_sizes(n: int, k: int) -> list[int]:
    """Sizes of ``k`` near-equal groups of ``n`` items (the first ``n mod k`` get one more)."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def expected_byzantine_votes(p: int, q: int, r: int) -> float:
    """``E[q_hat]`` (§7.2.1, proof of Thm 7.4): the expected number of node groups of ``r`` with a
    Byzantine majority when ``q`` of ``p`` nodes are Byzantine and groups are a uniform random partition.

    ``E[q_hat] = (p / r) P[X >= (r + 1) / 2]`` with ``X ~ Hypergeometric(p, q, r)``, summed exactly in
    integers: ``P[X >= m] = sum_{i >= m} C(q, i) C(p - q, r - i) / C(p, r)``.
    """
    for name, v in (("p", p), ("q", q), ("r", r)):
        check_int(name, v, 0 if name == "q" else 1)
    if q > p or r > p:
        raise ValueError(f"expected_byzantine_votes needs q <= p and r <= p, got p={p}, q={q}, r={r}")
    hits = sum(math.comb(q, i) * math.comb(p - q, r - i) for i in range((r + 1) // 2, min(q, r) + 1))
    return p / r * hits / math.comb(p, r)


@CODINGS.register("detox")
class Detox(CodedScheme):
    """DETOX: random node groups of ``r``, majority vote per group, then HIER-AGGR(``a0``, ``a1``, ``k``).

    ``vote_groups`` is ``k``; ``a0``/``a1`` are aggregator names (``robustfl.aggregators.get``) with
    ``a0_params``/``a1_params``, or instances. ``a0`` must serve the smallest vote group
    (``P/(r k)`` rounded down) and ``a1`` must serve ``k`` inputs. ``seed`` fixes the node groups;
    the vote groups are redrawn at every decode from the decode's generator (Algorithm 7, line 2).
    ``vote``, ``atol``, ``rtol``: the majority vote (see ``robustfl.coding.vote``).
    """

    def __init__(
        self,
        workers: int,
        r: int = 3,
        vote_groups: int = 1,
        a0: AggregatorSpec = "mean",
        a1: AggregatorSpec = "mean",
        a0_params: Mapping[str, Any] | None = None,
        a1_params: Mapping[str, Any] | None = None,
        seed: int = 0,
        vote: VoteMethod = "auto",
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> None:
        self.workers = check_int("workers", workers, 1)
        self.r = check_int("r", r, 1)
        if self.r % 2 == 0 or self.workers % self.r:
            raise ValueError(
                f"detox needs an odd group size r that divides the number of workers P (Alg. 6); "
                f"got P={self.workers}, r={self.r}"
            )
        votes = self.workers // self.r
        self.vote_groups = check_int("vote_groups", vote_groups, 1)
        if self.vote_groups > votes:
            raise ValueError(
                f"detox needs vote_groups k <= P/r = {votes} votes (Alg. 7); got P={self.workers}, "
                f"r={self.r}, k={self.vote_groups}"
            )
        self.a0 = build_aggregator("a0", a0, a0_params)
        self.a1 = build_aggregator("a1", a1, a1_params)
        smallest = min(split_sizes(votes, self.vote_groups))
        for role, agg, n in (("a0", self.a0, smallest), ("a1", self.a1, self.vote_groups)):
            try:
                agg.check_n(n)
            except ValueError as err:
                raise ValueError(
                    f"detox {role}={agg!r} cannot aggregate {n} inputs (P={self.workers}, r={self.r}, "
                    f"k={self.vote_groups}: {votes} votes in {self.vote_groups} vote groups): {err}"
                ) from None
        self.seed = check_int("seed", seed, 0)
        self.vote = check_vote_method(vote)
        self.atol = check_positive("atol", atol, allow_zero=True)
        self.rtol = check_positive("rtol", rtol, allow_zero=True)
        self.per_worker = self.r
        perm = torch.randperm(self.workers, generator=make_generator(self.seed, "detox-node-groups"))
        self._groups = perm.reshape(votes, self.r).sort(dim=1).values  # [P/r, r] worker ids

    def node_groups(self) -> list[list[int]]:
        """The fixed node groups ``A_1, ..., A_{P/r}`` (worker ids)."""
        return self._groups.tolist()

    def assignment(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.workers)]
        for g, members in enumerate(self._groups.tolist()):
            for w in members:
                out[w] = list(range(g * self.r, (g + 1) * self.r))
        return out

    def coefficients(self) -> Tensor:
        return torch.full((self.workers, self.r), 1.0 / self.r, dtype=torch.float64)

    def votes(self, received: Tensor) -> tuple[Tensor, Tensor]:
        """The filtering stage: ``(votes: Tensor[P/r, d], has_majority: Tensor[P/r] bool)``."""
        self._check_received(received)
        return self._votes(received)[:2]

    def _votes(self, received: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        groups = self._groups.to(received.device)
        x = received[groups.reshape(-1)].reshape(groups.shape[0], self.r, -1)
        return vote_with_support(x, self.vote, self.atol, self.rtol)

    def hier_aggr(self, votes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Algorithm 7: random vote groups of near-equal size, ``A_0`` on each, ``A_1`` across."""
        n = votes.shape[0]
        gen_dev = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=gen_dev).to(votes.device)
        parts = torch.split(votes[order], split_sizes(n, self.vote_groups))
        return self.a1(torch.stack([self.a0(part) for part in parts]))

    def _decode(
        self, received: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, tuple[int, ...], int, float | None]:
        votes, has, agrees = self._votes(received)
        located = deviating_workers(self._groups.to(received.device), agrees, has)
        return self.hier_aggr(votes, generator), located, int((~has).sum()), None


def _largest_f(n: int, bound: int) -> int:
    """``f`` for a §7.6.5 requirement ``n >= bound * f + 3`` (0 when even ``f = 0`` would not fit)."""
    return max((n - 3) // bound, 0)


def _default_k(workers: int, r: int, k: int | None, per_group: int) -> int:
    votes = max(workers // r, 1)
    return max(votes // per_group, 1) if k is None else k


@CODINGS.register("detox-median", "d-median")
def detox_median(workers: int, r: int = 3, vote_groups: int | None = None, seed: int = 0) -> Detox:
    """§7.4 setup 1: ``A_0 = mean``, ``A_1 = coordinate-wise median``. ``vote_groups`` defaults to
    groups of 5 votes (§7.6.5's ALIE setting: 15 votes in 3 groups)."""
    k = _default_k(workers, r, vote_groups, 5)
    return Detox(workers, r, k, "mean", "median", seed=seed)


@CODINGS.register("detox-multi-krum", "d-multi-krum")
def detox_multi_krum(
    workers: int, r: int = 3, vote_groups: int = 2, f: int | None = None, seed: int = 0
) -> Detox:
    """§7.4 setup 2: ``A_0 = Multi-Krum``, ``A_1 = mean``, 2 vote groups (§7.6.5: 15 votes as 7 + 8).
    ``f`` defaults to the largest with ``n >= 2f + 3`` on the smallest vote group (§7.6.5)."""
    smallest = min(split_sizes(max(workers // r, 1), max(vote_groups, 1)))
    f = _largest_f(smallest, 2) if f is None else f
    return Detox(workers, r, vote_groups, "multi-krum", "mean", a0_params={"f": f}, seed=seed)


@CODINGS.register("detox-bulyan", "d-bulyan")
def detox_bulyan(
    workers: int, r: int = 3, vote_groups: int = 1, f: int | None = None, seed: int = 0
) -> Detox:
    """§7.4 setup 3: ``A_0 = Bulyan``, ``A_1 = mean``, one vote group (§7.6.5: Bulyan over all 15
    votes). ``f`` defaults to the largest with ``n >= 4f + 3`` on the smallest vote group."""
    smallest = min(split_sizes(max(workers // r, 1), max(vote_groups, 1)))
    f = _largest_f(smallest, 4) if f is None else f
    return Detox(workers, r, vote_groups, "bulyan", "mean", a0_params={"f": f}, seed=seed)


@CODINGS.register("detox-signsgd", "d-signsgd")
def detox_signsgd(workers: int, r: int = 3, vote_groups: int | None = None, seed: int = 0) -> Detox:
    """§7.4 setup 4 (with signSGD): coordinate-wise majority vote as both ``A_0`` and ``A_1``.
    ``vote_groups`` defaults to groups of 5 votes (the chapter does not state it)."""
    k = _default_k(workers, r, vote_groups, 5)
    return Detox(workers, r, k, "sign-majority", "sign-majority", seed=seed)
