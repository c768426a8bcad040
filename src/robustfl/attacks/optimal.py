"""Line-search versions of ALIE and IPM (ByzFL's ``Optimal_ALittleIsEnough`` and
``Optimal_InnerProductManipulation``; used in Allouah et al., 2023).

The factor ``tau`` is chosen to maximise ``||agg(pre(honest ++ byz(tau))) - mean(honest)||``, the
damage the attack does to the given aggregator, by ByzFL's search: from ``start``, step by ``delta``,
doubling the step while the objective improves (expansion); after the first failure, keep trying
``best + delta`` with ``delta`` multiplied by ``ratio`` each time (contraction) until ``evals``
objective evaluations are spent. ByzFL's default pre-aggregation is ``[Clipping()]``; ours is none
(pass ``pre_agg_list`` to match).
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from robustfl.aggregators.base import AGGREGATORS, Aggregator
from robustfl.aggregators.mean import Average
from robustfl.attacks.base import ATTACKS, Attack, repeat_rows
from robustfl.attacks.time_coupled import _alie
from robustfl.checks import check_int, check_real

Rule = Callable[[Tensor], Tensor]


def line_search(
    objective: Callable[[float], float], start: float, delta: float, ratio: float, evals: int
) -> float:
    """ByzFL's expansion/contraction search for the maximiser of ``objective`` (``evals`` calls)."""
    best_x, best_y = start, objective(start)
    remaining = evals - 1
    while remaining > 0:  # expansion
        x = best_x + delta
        y = objective(x)
        remaining -= 1
        if y > best_y:
            best_x, best_y = x, y
            delta *= 2
        else:
            delta *= ratio
            break
    while remaining > 0:  # contraction
        x = best_x + delta
        y = objective(x)
        remaining -= 1
        if y > best_y:
            best_x, best_y = x, y
        delta *= ratio
    return best_x


class _OptimalFactor(Attack):
    """Shared parameters and search; subclasses give the Byzantine vector for a factor ``tau``.

    ``agg`` is the rule the attack optimises against: an aggregator object, any callable on
    ``Tensor[n, d]``, or a registered name (built with its defaults); ``None`` is the mean.
    """

    def __init__(
        self,
        agg: Aggregator | Rule | str | None = None,
        pre_agg_list: Sequence[Rule] = (),
        evals: int = 20,
        start: float = 0.0,
        delta: float = 10.0,
        ratio: float = 0.8,
    ) -> None:
        if isinstance(agg, str):
            agg = AGGREGATORS.get(agg)
        self.agg: Rule = Average() if agg is None else agg
        if not callable(self.agg):
            raise ValueError(f"agg must be an aggregator (callable on Tensor[n, d]), got {agg!r}")
        self.pre_agg_list = tuple(pre_agg_list)
        for p in self.pre_agg_list:
            if not callable(p):
                raise ValueError(f"pre_agg_list entries must be callable on Tensor[n, d], got {p!r}")
        self.evals = check_int("evals", evals, minimum=1)
        self.start = check_real("start", start)
        self.delta = check_real("delta", delta)
        if self.delta == 0:
            raise ValueError("delta (the initial step of the search) must be non-zero")
        self.ratio = check_real("ratio", ratio)
        if not 0.5 < self.ratio < 1:
            raise ValueError(f"ratio must lie in (0.5, 1), got {ratio!r}")

    @abstractmethod
    def _vector(self, honest: Tensor, tau: float) -> Tensor: ...

    def best_tau(self, honest: Tensor, f: int) -> float:
        """The factor the search picks against ``self.agg`` for these honest messages and ``f``."""
        mean = honest.mean(dim=0)

        def damage(tau: float) -> float:
            # Stateful rules (centered clipping's centre) are probed through copies of their current
            # state, so the search neither disturbs them nor sees its own earlier probes.
            x = torch.cat([honest, repeat_rows(self._vector(honest, tau), f)])
            for p in self.pre_agg_list:
                x = copy.deepcopy(p)(x)
            return float(torch.linalg.vector_norm(copy.deepcopy(self.agg)(x) - mean))

        return line_search(damage, self.start, self.delta, self.ratio, self.evals)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return repeat_rows(self._vector(honest, self.best_tau(honest, f)), f)


@ATTACKS.register("optimal-alie", "optimalalie", "optimal_alittleisenough")
class OptimalALIE(_OptimalFactor):
    """ALIE ``mu + tau * sigma`` with ``tau`` found by the line search against ``agg``."""

    def _vector(self, honest: Tensor, tau: float) -> Tensor:
        return _alie(honest, tau)


@ATTACKS.register("optimal-ipm", "optimalipm", "optimal_innerproductmanipulation")
class OptimalIPM(_OptimalFactor):
    """IPM ``-tau * mu`` with ``tau`` found by the line search against ``agg``."""

    def _vector(self, honest: Tensor, tau: float) -> Tensor:
        return -tau * honest.mean(dim=0)
