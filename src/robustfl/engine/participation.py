"""Who takes part in a round, and who attacks (``workers.per_round`` and the ``[byzantine]`` schedule).

* **Cohort**: ``per_round = m`` of the ``n`` clients, uniformly without replacement, from the shared
  ``cohort`` stream of the round (``m = n``: everybody, no draw).
* **Byzantine ids**: ``"last"`` (the last ``f`` ids), ``"random"`` (``f`` ids drawn once from the shared
  ``byzantine`` stream) or an explicit list; ``resample = True`` draws a fresh set every round (DRACO's
  adversaries, re-drawn each iteration; Chen et al., ICML 2018).
* **Frequency**: ``every = k`` lets the Byzantine clients take part only in rounds ``t`` with
  ``t mod k = 0`` (the fixed-frequency attacker of Wang et al., NeurIPS 2020, §4: one attacker every 10
  rounds); in those rounds all of them are in the cohort and the remaining ``m - f`` places go to honest
  clients; in the other rounds the cohort is drawn from the honest clients alone. With ``every = 1`` the
  Byzantine clients are sampled like anyone else (the fixed-pool variant).

The cohort is returned sorted by id, so with ``m = n`` and ``ids = "last"`` the Byzantine rows are the
last ``f`` rows, as they always were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from robustfl.checks import check_int
from robustfl.streams import Streams


@dataclass(frozen=True)
class ByzantineSchedule:
    """Which clients are Byzantine and when they act (see the module docstring)."""

    f: int = 0
    ids: str | tuple[int, ...] = "last"
    every: int = 1
    resample: bool = False

    def __post_init__(self) -> None:
        check_int("byzantine f", self.f)
        check_int("byzantine.every", self.every, minimum=1)
        if isinstance(self.ids, str):
            if self.ids not in ("last", "random"):
                raise ValueError(f"byzantine.ids must be 'last', 'random' or a list of ids, got {self.ids!r}")
        elif len(self.ids) != self.f:
            raise ValueError(f"byzantine.ids lists {len(self.ids)} ids but workers.f = {self.f}")
        elif len(set(self.ids)) != len(self.ids):
            raise ValueError(f"byzantine.ids has repeated ids: {list(self.ids)}")
        if self.resample and not (self.ids == "random"):
            raise ValueError("byzantine.resample = true needs byzantine.ids = 'random'")

    def check(self, n: int, per_round: int) -> None:
        """Raise ``ValueError`` if the schedule cannot run with ``n`` clients, ``per_round`` a round."""
        if self.f >= n:
            raise ValueError(f"workers.f = {self.f} must be smaller than workers.n = {n}")
        if not isinstance(self.ids, str) and any(not 0 <= i < n for i in self.ids):
            raise ValueError(f"byzantine.ids must be client ids in [0, {n}), got {list(self.ids)}")
        if self.every > 1 and self.f > per_round:
            raise ValueError(
                f"byzantine.every = {self.every} puts all f = {self.f} Byzantine clients in one cohort of "
                f"workers.per_round = {per_round}: f must be <= per_round"
            )

    def byzantine_ids(self, n: int, streams: Streams, round: int) -> Tensor:
        """The ids that are Byzantine in ``round`` (sorted)."""
        if self.f == 0:
            return torch.zeros(0, dtype=torch.long)
        if self.ids == "last":
            return torch.arange(n - self.f, n)
        if self.ids == "random":
            gen = streams.shared("byzantine", round if self.resample else None)
            return torch.randperm(n, generator=gen)[: self.f].sort().values
        return torch.tensor(sorted(self.ids), dtype=torch.long)

    def active(self, round: int) -> bool:
        """Whether the Byzantine clients take part in ``round``."""
        return round % self.every == 0


def draw_cohort(
    n: int, per_round: int, schedule: ByzantineSchedule, streams: Streams, round: int
) -> tuple[Tensor, Tensor]:
    """``(ids, byzantine)``: the round's sorted client ids ``Tensor[m']`` and which are Byzantine."""
    byz = schedule.byzantine_ids(n, streams, round)
    is_byz = torch.zeros(n, dtype=torch.bool)
    is_byz[byz] = True
    if schedule.every == 1:
        ids = _sample(torch.arange(n), per_round, streams, round)
    else:
        honest = torch.arange(n)[~is_byz]
        if schedule.active(round):
            ids = torch.cat([byz, _sample(honest, per_round - len(byz), streams, round)]).sort().values
        else:
            ids = _sample(honest, min(per_round, len(honest)), streams, round)
    return ids, is_byz[ids]


def _sample(pool: Tensor, m: int, streams: Streams, round: int) -> Tensor:
    if m >= len(pool):
        return pool
    pick = torch.randperm(len(pool), generator=streams.shared("cohort", round))[:m]
    return pool[pick].sort().values


def parse_ids(ids: str | Sequence[int]) -> str | tuple[int, ...]:
    """A config's ``byzantine.ids`` as the schedule takes it."""
    return ids if isinstance(ids, str) else tuple(int(i) for i in ids)
