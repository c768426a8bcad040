"""Learning-rate schedules: ``lr_t = lr * factor(t)`` for round ``t`` (from 0), plain functions of ``t``.

* ``constant``: ``1``;
* ``step``: ``gamma^(number of milestones <= t)`` (e.g. the CIFAR recipe "÷10 at 150 and 250":
  ``milestones = [150, 250], gamma = 0.1``);
* ``exponential``: ``gamma^t`` per round;
* ``cosine``: ``min_factor + (1 - min_factor) (1 + cos(pi t / (period + 1))) / 2`` (Loshchilov & Hutter,
  ICLR 2017, without restarts; constant after round ``period``). The ``+ 1`` keeps the last lr above
  ``min_factor`` (a zero lr is refused: a round that cannot move is a configuration mistake);
* ``periodic-exponential``: ``gamma^(t mod period)`` (the signSGD schedule of DETOX's experiments,
  Rajput et al., NeurIPS 2019).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from robustfl.checks import check_fraction, check_int, check_positive
from robustfl.registry import Configurable, Registry


class LRSchedule(Configurable, ABC):
    """``factor(round)`` multiplies the base learning rate; ``lr_at(lr, round)`` applies it."""

    @abstractmethod
    def factor(self, round: int) -> float: ...

    def lr_at(self, lr: float, round: int) -> float:
        return lr * self.factor(round)


LR_SCHEDULES: Registry[LRSchedule] = Registry("lr schedule")


@LR_SCHEDULES.register("constant")
class Constant(LRSchedule):
    def factor(self, round: int) -> float:
        return 1.0


@LR_SCHEDULES.register("step", "multistep")
class Step(LRSchedule):
    def __init__(self, milestones: Sequence[int] = (), gamma: float = 0.1) -> None:
        if isinstance(milestones, str | bytes) or not isinstance(milestones, Sequence):
            raise ValueError(f"milestones must be a list of rounds, got {milestones!r}")
        self.milestones = sorted(check_int("milestones[]", m, minimum=1) for m in milestones)
        self.gamma = check_positive("gamma", gamma)

    def factor(self, round: int) -> float:
        return self.gamma ** sum(1 for m in self.milestones if round >= m)


@LR_SCHEDULES.register("exponential")
class Exponential(LRSchedule):
    def __init__(self, gamma: float = 0.99) -> None:
        self.gamma = check_positive("gamma", gamma)

    def factor(self, round: int) -> float:
        return self.gamma**round


@LR_SCHEDULES.register("cosine")
class Cosine(LRSchedule):
    def __init__(self, period: int = 100, min_factor: float = 0.0) -> None:
        self.period = check_int("period", period, minimum=1)
        self.min_factor = check_fraction("min_factor", min_factor)

    def factor(self, round: int) -> float:
        t = min(round, self.period) / (self.period + 1)
        return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * t)) / 2


@LR_SCHEDULES.register("periodic-exponential")
class PeriodicExponential(LRSchedule):
    def __init__(self, gamma: float = 0.99, period: int = 100) -> None:
        self.gamma = check_positive("gamma", gamma)
        self.period = check_int("period", period, minimum=1)

    def factor(self, round: int) -> float:
        return self.gamma ** (round % self.period)
