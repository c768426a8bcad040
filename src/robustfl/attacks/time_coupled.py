"""Attacks that hide inside the honest spread (seed 002, 'Fall of Empires' / 'Time-coupled attacks').

All three are omniscient and send ``f`` identical rows, as ByzFL does.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor

from robustfl.attacks.base import ATTACKS, Attack, repeat_rows
from robustfl.checks import check_int, check_real


def alie_z(n: int, f: int) -> float:
    """The 'a little is enough' factor of Baruch et al. (2019): ``s = floor(n/2 + 1) - f`` honest workers
    must be won over, and ``z = Phi^{-1}((n - s) / n)`` is the largest shift (in standard deviations)
    that still leaves the Byzantine value closer to the mean than ``s`` honest values are."""
    s = math.floor(n / 2 + 1) - f
    if s <= 0 or f <= 0:
        raise ValueError(
            f"the ALIE formula needs 0 < f < floor(n/2 + 1), got n={n}, f={f}; pass tau explicitly"
        )
    return NormalDist().inv_cdf((n - s) / n)


def _alie(honest: Tensor, tau: float) -> Tensor:
    """``mean + tau * std`` per coordinate, with the unbiased (``h - 1``) standard deviation."""
    if honest.shape[0] < 2:
        raise ValueError(
            f"ALIE needs at least 2 honest messages for a standard deviation, got {honest.shape[0]}"
        )
    return honest.mean(dim=0) + tau * honest.std(dim=0, unbiased=True)


@ATTACKS.register("alie", "alittleisenough", "a-little-is-enough")
class ALittleIsEnough(Attack):
    """ALIE (Baruch et al., 2019; ByzFL's ``ALittleIsEnough(tau)``): every Byzantine row is
    ``mu + tau * sigma`` with ``mu`` the honest mean and ``sigma`` the per-coordinate unbiased standard
    deviation. ``tau=None`` (default) uses the paper's ``z`` for ``n = h + f`` (see :func:`alie_z`).
    The paper writes ``mu - z * sigma``; a negative ``tau`` gives that direction."""

    def __init__(self, tau: float | None = None) -> None:
        self.tau = None if tau is None else check_real("tau", tau)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        tau = alie_z(honest.shape[0] + f, f) if self.tau is None else self.tau
        return repeat_rows(_alie(honest, tau), f)


@ATTACKS.register("ipm", "innerproductmanipulation", "fall-of-empires")
class InnerProductManipulation(Attack):
    """IPM / 'fall of empires' (Xie et al., 2020; ByzFL's ``InnerProductManipulation(tau)``): every
    Byzantine row is ``-tau * mu``, which makes the inner product of the aggregate with the true
    gradient negative when ``tau`` is large enough."""

    def __init__(self, tau: float = 2.0) -> None:
        self.tau = check_real("tau", tau)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return repeat_rows(-self.tau * honest.mean(dim=0), f)


@ATTACKS.register("mimic")
class Mimic(Attack):
    """Mimic (Karimireddy et al., 2022; ByzFL's ``Mimic(epsilon)``): every Byzantine worker sends the
    message of honest worker ``epsilon``, over-weighting one (non-IID) worker's data."""

    def __init__(self, epsilon: int = 0) -> None:
        self.epsilon = check_int("epsilon", epsilon)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        if self.epsilon >= honest.shape[0]:
            raise ValueError(
                f"Mimic's epsilon={self.epsilon} must index an honest message (< h={honest.shape[0]})"
            )
        return repeat_rows(honest[self.epsilon], f)
