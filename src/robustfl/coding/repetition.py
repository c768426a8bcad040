"""DRACO's fractional repetition code (Chen et al., ICML 2018; seed 004 §6.2, Theorem 6.7)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.checks import check_int, check_positive
from robustfl.coding.base import CODINGS, CodedScheme
from robustfl.coding.vote import VoteMethod, check_vote_method, vote_with_support


def deviating_workers(groups: Tensor, agrees: Tensor, has: Tensor) -> tuple[int, ...]:
    """Workers of majority groups whose message differs from their group's vote.

    ``groups: Tensor[g, r]`` worker ids; ``agrees: Tensor[g, r]`` from ``vote_with_support``.
    """
    return tuple(sorted(groups[~agrees & has.unsqueeze(1)].tolist()))


@CODINGS.register("draco-repetition", "repetition")
class DracoRepetition(CodedScheme):
    """Repetition code: ``P`` workers in ``P/r`` consecutive groups of ``r = 2s + 1``.

    Group ``l`` (workers ``l r, ..., l r + r - 1``) is assigned partitions ``l r, ..., l r + r - 1``
    (the block-diagonal ``A^Rep`` of §6.2); every member sends the mean of those ``r`` gradients (the
    chapter's sum ``Y_j 1_P`` divided by ``r``). The decoder takes each group's majority vote and
    averages the ``P/r`` votes: ``D(R) = (r/P) sum_l Maj(R_{group l})``. With at most ``s`` adversaries
    every group keeps ``s + 1`` honest members, so the output is exactly (bit for bit) the
    adversary-free output: Theorem 6.7. ``r`` must divide ``P``.

    ``vote``: ``"boyer-moore"`` (streaming, Algorithm 5), ``"pairwise"`` or ``"auto"`` (the cheaper); ``atol``/``rtol``: the
    equality tolerance (0: exact, which keeps the bit-for-bit guarantee; use a tolerance only when
    honest workers' gradients differ in the last bits, e.g. on non-deterministic GPU kernels).
    """

    def __init__(
        self,
        workers: int,
        s: int = 1,
        vote: VoteMethod = "auto",
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> None:
        self.workers = check_int("workers", workers, 1)
        self.s = check_int("s", s, 0)
        r = 2 * self.s + 1
        if self.workers % r:
            raise ValueError(
                f"draco-repetition needs r = 2s + 1 to divide the number of workers P (Thm 6.7); "
                f"got P={self.workers}, s={self.s}, r={r}: choose P a multiple of {r} or another s"
            )
        self.vote = check_vote_method(vote)
        self.atol = check_positive("atol", atol, allow_zero=True)
        self.rtol = check_positive("rtol", rtol, allow_zero=True)
        self.per_worker = r

    @property
    def r(self) -> int:
        return 2 * self.s + 1

    def assignment(self) -> list[list[int]]:
        r = self.r
        return [list(range(j // r * r, j // r * r + r)) for j in range(self.workers)]

    def coefficients(self) -> Tensor:
        return torch.full((self.workers, self.r), 1.0 / self.r, dtype=torch.float64)

    def _decode(
        self, received: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, tuple[int, ...], int, float | None]:
        r, g = self.r, self.workers // self.r
        votes, has, agrees = vote_with_support(received.reshape(g, r, -1), self.vote, self.atol, self.rtol)
        groups = torch.arange(self.workers, device=received.device).reshape(g, r)
        located = deviating_workers(groups, agrees, has)
        return votes.mean(dim=0), located, int((~has).sum()), None
