"""An adaptive attack: a perturbation direction scaled to do the most damage to the run's aggregator.

Every Byzantine row is ``mu + tau * p`` (``mu`` the honest mean, ``p`` a direction), with ``tau``
chosen by the line search of :mod:`robustfl.attacks.optimal` to maximise
``||agg(pre(honest ++ byz(tau))) - mu||`` against the aggregator actually in use (the attack matrix
and the simulator pass it as ``agg``). This generalises the optimised ALIE (``p = sigma``) and IPM
(``p = -mu`` up to the offset ``mu``) to Shejwalkar & Houmansadr's (NDSS 2021) perturbation
directions: their AGR-tailored attacks optimise the same scale against a known aggregator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from robustfl.aggregators.base import Aggregator
from robustfl.attacks.base import ATTACKS
from robustfl.attacks.min_max import DIRECTIONS, perturbation
from robustfl.attacks.optimal import Rule, _OptimalFactor

AdaptiveDirection = Literal["unit-vec", "std", "sign", "alie", "ipm"]
ADAPTIVE_DIRECTIONS: tuple[str, ...] = (*DIRECTIONS, "alie", "ipm")


@ATTACKS.register("adaptive", "adaptive-scale")
class AdaptiveScale(_OptimalFactor):
    """``mu + tau * p`` with ``tau`` from the line search against ``agg``.

    ``direction``: "unit-vec" (``-mu / ||mu||``), "std" (``-sigma``), "sign" (``-sign(mu)``), "alie"
    (``+sigma``, ALIE's direction) or "ipm" (``-mu``). The search parameters (``evals``, ``start``,
    ``delta``, ``ratio``) and ``agg`` / ``pre_agg_list`` are those of :class:`OptimalALIE`.
    ``tau`` is in the units of ``p``: a multiple of the per-coordinate deviation for "std" and "alie"
    (where the defaults fit), a plain norm for "unit-vec", a per-coordinate offset for "sign". Choose
    ``delta`` on that scale for the last two (e.g. the honest spread for "unit-vec").
    """

    def __init__(
        self,
        direction: AdaptiveDirection = "std",
        agg: Aggregator | Rule | str | None = None,
        pre_agg_list: Sequence[Rule] = (),
        evals: int = 20,
        start: float = 0.0,
        delta: float = 10.0,
        ratio: float = 0.8,
    ) -> None:
        if direction not in ADAPTIVE_DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(ADAPTIVE_DIRECTIONS)}, got {direction!r}")
        self.direction: AdaptiveDirection = direction
        super().__init__(agg, pre_agg_list, evals, start, delta, ratio)

    def direction_vector(self, honest: Tensor) -> Tensor:
        """``p`` for these honest messages (float64 ``[d]``)."""
        if self.direction == "alie":
            return -perturbation(honest, "std")
        if self.direction == "ipm":
            return -honest.to(torch.float64).mean(dim=0)
        return perturbation(honest, self.direction)

    def _vector(self, honest: Tensor, tau: float) -> Tensor:
        p = self.direction_vector(honest).to(honest.device)
        return (honest.to(torch.float64).mean(dim=0) + tau * p).to(honest.dtype)
