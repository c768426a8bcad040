"""The message-attack contract: ``attack(honest, f, *, rng, round=0, own=None) -> Tensor[f, d]``.

``honest: Tensor[h, d]`` holds the messages the attacker can see (for an omniscient attack: the honest
workers' messages of this round). ``own: Tensor[f, d] | None`` holds the messages the ``f`` Byzantine
workers would have sent had they been honest; attacks that transform their own update (seed 000's bit
flip and additive noise, seed 001's large-number attack, seed 004's PGD projection and model
replacement) read it and raise a clear ``ValueError`` when it is missing; all other attacks ignore it. The output lives on ``honest``'s device and dtype.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from robustfl.aggregators.base import check_messages
from robustfl.registry import Configurable, Registry


def check_f(f: object) -> int:
    """The number of Byzantine rows to produce: an integer ``>= 0``."""
    if isinstance(f, bool) or not isinstance(f, int):
        raise ValueError(f"f (the number of Byzantine messages) must be an integer, got {f!r}")
    if f < 0:
        raise ValueError(f"f (the number of Byzantine messages) must be >= 0, got {f}")
    return f


class Attack(Configurable, ABC):
    """A Byzantine message attack: maps what the attacker sees to the ``f`` Byzantine messages.

    ``omniscient`` says whether the attack reads the honest messages of the round (ALIE, IPM, Mimic,
    sign flipping); ``needs_own`` whether it transforms the Byzantine workers' own true messages.
    Stateful attacks keep their memory on the object and clear it in ``reset``.
    """

    omniscient: ClassVar[bool] = True
    needs_own: ClassVar[bool] = False

    def __call__(
        self,
        honest: Tensor,
        f: int,
        *,
        rng: torch.Generator | None = None,
        round: int = 0,
        own: Tensor | None = None,
    ) -> Tensor:
        honest = check_messages(honest)
        f = check_f(f)
        if own is not None:
            if not isinstance(own, Tensor) or tuple(own.shape) != (f, honest.shape[1]):
                got = tuple(own.shape) if isinstance(own, Tensor) else type(own).__name__
                raise ValueError(
                    f"own (the Byzantine workers' true messages) must be a Tensor of shape [f, d] = "
                    f"[{f}, {honest.shape[1]}], got {got}"
                )
            own = own.to(device=honest.device, dtype=honest.dtype)
        elif self.needs_own and f > 0:
            raise ValueError(
                f"{type(self).__name__} corrupts the Byzantine workers' own messages: pass "
                f"own=Tensor[f, d] (what they would have sent honestly)"
            )
        if f == 0:
            return honest.new_empty((0, honest.shape[1]))
        out = self._attack(honest, f, rng=rng, round=round, own=own)
        return out.to(device=honest.device, dtype=honest.dtype)

    @abstractmethod
    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor: ...

    def reset(self) -> None:
        """Forget any memory kept between rounds (stateless attacks: nothing to do)."""


def require_own(own: Tensor | None) -> Tensor:
    """``own`` for attacks with ``needs_own`` (``Attack.__call__`` has already checked it is given)."""
    if own is None:
        raise ValueError("own (the Byzantine workers' true messages) is required")
    return own


def repeat_rows(vector: Tensor, f: int) -> Tensor:
    """``f`` identical Byzantine rows (a copy, so callers may modify them)."""
    return vector.unsqueeze(0).expand(f, -1).clone()


def normal_like(shape: tuple[int, ...], like: Tensor, rng: torch.Generator | None) -> Tensor:
    """Standard normal samples of ``shape`` drawn on CPU from ``rng`` (reproducible on any device)."""
    z = torch.randn(shape, generator=rng, dtype=torch.float64)
    return z.to(device=like.device, dtype=like.dtype)


ATTACKS: Registry[Attack] = Registry("attack")
