"""Gradient corruptions of seed 000 ('Empirical Evidence: Gradient Corruption') and the attacks of seed
001 (Sec. V: large-number, sign-flipping, Gaussian), plus non-finite injection.

Seed 000 and seed 001 corrupt each Byzantine worker's *own* true message; those attacks read
``own: Tensor[f, d]`` (``needs_own = True``). ``SignFlipping`` follows ByzFL (minus the honest mean) and
is omniscient; seed 001's per-worker sign flip of the own message is ``BitFlip(scale=1)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfl.attacks.base import ATTACKS, Attack, normal_like, repeat_rows, require_own
from robustfl.checks import check_positive, check_real


@ATTACKS.register("bit-flip", "bitflip")
class BitFlip(Attack):
    """Scaled bit flip of seed 000: ``g_c = -scale * g`` on each Byzantine worker's own gradient ``g``
    (``scale = 100`` in the seed). ``scale = 1`` is seed 001's sign-flipping of the true message."""

    omniscient = False
    needs_own = True

    def __init__(self, scale: float = 100.0) -> None:
        self.scale = check_positive("scale", scale)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return require_own(own) * -self.scale


@ATTACKS.register("additive-gaussian", "additive-noise")
class AdditiveGaussian(Attack):
    """Additive (Huber) gradient corruption of seed 000: ``g_c = g + z`` with ``z ~ N(mean, std^2)`` per
    coordinate. The seed writes ``N(0, 100)``; as for its ``N(100, 1)`` feature noise we read the second
    argument as the *variance*, so the default is ``std = 10``."""

    omniscient = False
    needs_own = True

    def __init__(self, std: float = 10.0, mean: float = 0.0) -> None:
        self.std = check_positive("std", std, allow_zero=True)
        self.mean = check_real("mean", mean)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        g = require_own(own)
        return g + self.mean + self.std * normal_like(tuple(g.shape), g, rng)


@ATTACKS.register("large-number", "largenumber")
class LargeNumber(Attack):
    """Seed 001's large-number attack: each Byzantine worker multiplies every element of its true
    message by a large number (``scale = 10000`` in the paper)."""

    omniscient = False
    needs_own = True

    def __init__(self, scale: float = 10000.0) -> None:
        self.scale = check_real("scale", scale)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return require_own(own) * self.scale


@ATTACKS.register("constant")
class Constant(Attack):
    """Every Byzantine coordinate set to one large constant ``value`` (the constant variant of the
    large-number attack); needs only the message width."""

    omniscient = False

    def __init__(self, value: float = 10000.0) -> None:
        self.value = check_real("value", value)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return honest.new_full((f, honest.shape[1]), self.value)


@ATTACKS.register("sign-flip", "signflipping", "sign-flipping")
class SignFlipping(Attack):
    """ByzFL's ``SignFlipping``: every Byzantine row is ``-(1/h) sum_i x_i``, minus the honest mean."""

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return repeat_rows(-honest.mean(dim=0), f)


@ATTACKS.register("gaussian")
class Gaussian(Attack):
    """ByzFL's ``Gaussian(mu, sigma)``: each Byzantine coordinate i.i.d. ``N(mu, sigma^2)``, independent
    across rows. The defaults (standard normal) are seed 001's Gaussian attack."""

    omniscient = False

    def __init__(self, mu: float = 0.0, sigma: float = 1.0) -> None:
        self.mu = check_real("mu", mu)
        self.sigma = check_positive("sigma", sigma, allow_zero=True)

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return self.mu + self.sigma * normal_like((f, honest.shape[1]), honest, rng)


@ATTACKS.register("inf")
class Inf(Attack):
    """ByzFL's ``Inf``: every Byzantine coordinate is ``+inf``."""

    omniscient = False

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return honest.new_full((f, honest.shape[1]), float("inf"))


@ATTACKS.register("nan")
class NaN(Attack):
    """Every Byzantine coordinate is ``NaN`` (a crashed or malicious worker sending garbage)."""

    omniscient = False

    def _attack(
        self, honest: Tensor, f: int, *, rng: torch.Generator | None, round: int, own: Tensor | None
    ) -> Tensor:
        return honest.new_full((f, honest.shape[1]), float("nan"))
