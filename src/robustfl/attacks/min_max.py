"""Min-Max and Min-Sum (Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model
Poisoning Attacks and Defenses for Federated Learning", NDSS 2021, Sec. IV, Eq. 6-8 and Algorithm 1).

Every Byzantine row is ``mu + gamma * p``: the honest mean plus a perturbation direction ``p``
scaled by the largest ``gamma`` that keeps the row "inside" the honest rows,

* Min-Max: ``max_i ||b - x_i|| <= max_{i,j} ||x_i - x_j||``,
* Min-Sum: ``sum_i ||b - x_i||^2 <= max_i sum_j ||x_i - x_j||^2``,

found by binary search. Both constraints hold at ``gamma = 0`` (the mean lies in the honest rows'
convex hull) and their left-hand sides are convex in ``gamma``, so the feasible ``gamma >= 0`` form
one interval ``[0, gamma*]`` and the search converges to ``gamma*``. Distances are expanded around
the mean, ``||mu + gamma p - x_i||^2 = a_i + 2 gamma b_i + gamma^2 ||p||^2`` with ``a_i = ||mu - x_i||^2``
and ``b_i = <mu - x_i, p>`` (float64, centred: accurate on model weights), so each probe costs O(h).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from robustfl.aggregators.base import check_positive
from robustfl.attacks.base import ATTACKS, Attack, repeat_rows

Direction = Literal["unit-vec", "std", "sign"]
DIRECTIONS: tuple[str, ...] = ("unit-vec", "std", "sign")


def check_direction(value: object) -> Direction:
    if value not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {value!r}")
    return value  # type: ignore[return-value]


def perturbation(honest: Tensor, direction: Direction) -> Tensor:
    """The paper's perturbation vectors (float64 ``[d]``): inverse unit vector ``-mu / ||mu||``,
    inverse standard deviation ``-sigma`` (unbiased, per coordinate) or inverse sign ``-sign(mu)``."""
    x = honest.to(torch.float64)
    mu = x.mean(dim=0)
    if direction == "unit-vec":
        norm = torch.linalg.vector_norm(mu)
        return -mu / norm if float(norm) > 0 else torch.zeros_like(mu)
    if direction == "std":
        return -x.std(dim=0, unbiased=True) if x.shape[0] > 1 else torch.zeros_like(mu)
    return -torch.sign(mu)


def largest_feasible(
    feasible: Callable[[float], bool],
    start: float = 10.0,
    rel_tol: float = 1e-5,
    max_doublings: int = 200,
    max_bisections: int = 200,
) -> float:
    """The largest ``gamma >= 0`` with ``feasible(gamma)``, for a feasible set ``[0, gamma*]``.

    The paper starts at ``gamma = 10`` and halves its step (to an absolute 1e-5); here the bracket is
    first grown by doubling (so ``gamma*`` above ``2 * start`` is reached too), then bisected until its
    width is below ``rel_tol * gamma`` (at most ``max_bisections`` halvings, so a feasible set ``{0}``
    ends the search at ``0``). Returns the feasible end of the final bracket.
    """
    lo, hi = 0.0, start
    for _ in range(max_doublings):
        if not feasible(hi):
            break
        lo, hi = hi, hi * 2
    else:
        return lo
    for _ in range(max_bisections):
        if hi - lo <= rel_tol * hi:
            break
        mid = (lo + hi) / 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _expansion(honest: Tensor, p: Tensor) -> tuple[Tensor, Tensor, float, Tensor]:
    """``(a, b, c, centred)``: ``a_i = ||mu - x_i||^2``, ``b_i = <mu - x_i, p>``, ``c = ||p||^2``."""
    x = honest.to(torch.float64)
    centred = x - x.mean(dim=0)
    a = torch.linalg.vector_norm(centred, dim=1).square()
    return a, -(centred @ p), float(p @ p), centred


class _MinDistance(Attack):
    """Shared parameters: the perturbation ``direction`` and the search's ``start`` and ``rel_tol``."""

    def __init__(self, direction: Direction = "unit-vec", start: float = 10.0, rel_tol: float = 1e-5) -> None:
        self.direction = check_direction(direction)
        self.start = check_positive("start", start)
        self.rel_tol = check_positive("rel_tol", rel_tol)

    def _feasible(self, a: Tensor, b: Tensor, c: float, centred: Tensor) -> Callable[[float], bool]:
        raise NotImplementedError

    def gamma(self, honest: Tensor) -> float:
        """The scale ``gamma*`` the binary search finds for these honest messages."""
        p = perturbation(honest, self.direction)
        if not bool(p.any()):
            return 0.0
        return largest_feasible(self._feasible(*_expansion(honest, p)), self.start, self.rel_tol)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        p = perturbation(honest, self.direction).to(honest.device)
        row = honest.to(torch.float64).mean(dim=0) + self.gamma(honest) * p
        return repeat_rows(row, f)


@ATTACKS.register("min-max", "minmax")
class MinMax(_MinDistance):
    """Min-Max: the Byzantine row's largest distance to an honest row stays within the largest
    distance between two honest rows. ``direction``: "unit-vec" (default, the authors' code), "std" or "sign"."""

    def _feasible(self, a: Tensor, b: Tensor, c: float, centred: Tensor) -> Callable[[float], bool]:
        gram = centred @ centred.T
        sq = gram.diagonal()
        bound = float((sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * gram).max())
        return lambda g: float((a + 2 * g * b + g * g * c).max()) <= bound


@ATTACKS.register("min-sum", "minsum")
class MinSum(_MinDistance):
    """Min-Sum: the Byzantine row's sum of squared distances to the honest rows stays within the
    largest such sum of an honest row. ``direction``: "unit-vec" (default, the authors' code), "std" or "sign"."""

    def _feasible(self, a: Tensor, b: Tensor, c: float, centred: Tensor) -> Callable[[float], bool]:
        h = a.shape[0]
        # sum_j ||x_i - x_j||^2 = sum_j a_j + h a_i;  sum_i ||b - x_i||^2 = sum_i a_i + h g^2 c (sum_i b_i = 0)
        total = float(a.sum())
        bound = total + h * float(a.max())
        return lambda g: total + 2 * g * float(b.sum()) + h * g * g * c <= bound
