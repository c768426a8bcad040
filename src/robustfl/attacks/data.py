"""Data corruption of seed 000 ('Empirical Evidence: Feature/Label Corruption'), applied to a client's
local data before it trains.

A transform is called as ``x2, y2, touched = t(x, y, generator=g)`` with ``x: Tensor[N, ...]`` and
``y: Tensor[N]``; it corrupts exactly ``round(fraction * N)`` samples chosen uniformly without
replacement by ``g`` (``touched`` is their boolean mask) and never modifies its inputs.
:func:`poison_clients` applies one to the chosen clients, each with its own generator derived from the
run seed, so a run is reproducible and adding a client never changes another's corruption.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from robustfl.checks import check_int, check_positive, check_real
from robustfl.registry import Configurable, Registry
from robustfl.utils import make_generator


def check_fraction(name: str, value: object) -> float:
    """A fraction in ``[0, 1]``."""
    v = check_positive(name, value, allow_zero=True)
    if v > 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


class DataAttack(Configurable, ABC):
    """Corrupt a ``fraction`` (the seed's psi) of a client's samples."""

    def __init__(self, fraction: float) -> None:
        self.fraction = check_fraction("fraction", fraction)

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        if not isinstance(x, Tensor) or not isinstance(y, Tensor) or x.dim() < 1 or y.dim() != 1:
            raise ValueError("data attacks take x: Tensor[N, ...] and labels y: Tensor[N]")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
        n = x.shape[0]
        k = round(self.fraction * n)
        chosen = torch.randperm(n, generator=generator)[:k].to(x.device)
        touched = torch.zeros(n, dtype=torch.bool, device=x.device)
        touched[chosen] = True
        x2, y2 = x.clone(), y.clone()
        if k:
            self._corrupt(x2, y2, chosen, generator)
        return x2, y2, touched

    @abstractmethod
    def _corrupt(self, x: Tensor, y: Tensor, idx: Tensor, generator: torch.Generator) -> None:
        """Corrupt samples ``idx`` of ``x``/``y`` in place (they are already copies)."""


DATA_ATTACKS: Registry[DataAttack] = Registry("data attack")


def _float_features(x: Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise ValueError(f"{name} needs float features (normalise the images first), got {x.dtype}")


@DATA_ATTACKS.register("feature-noise", "additive-feature-noise")
class AdditiveFeatureNoise(DataAttack):
    """Huber contamination of features: ``x <- x + z`` with ``z ~ N(mean, std^2)`` per feature; the seed
    adds ``N(100, 1)`` directly to the image (second argument read as the variance; ``std = 1`` either
    way)."""

    def __init__(self, fraction: float, mean: float = 100.0, std: float = 1.0) -> None:
        super().__init__(fraction)
        self.mean = check_real("mean", mean)
        self.std = check_positive("std", std, allow_zero=True)

    def _corrupt(self, x: Tensor, y: Tensor, idx: Tensor, generator: torch.Generator) -> None:
        _float_features(x, "AdditiveFeatureNoise")
        z = torch.randn((idx.numel(), *x.shape[1:]), generator=generator, dtype=torch.float64)
        x[idx] += (self.mean + self.std * z).to(x.dtype).to(x.device)


@DATA_ATTACKS.register("impulse", "salt-and-pepper")
class ImpulseNoise(DataAttack):
    """Salt-and-pepper noise: in each corrupted sample exactly ``round(pixel_fraction * P)`` of its ``P``
    features, chosen uniformly, are set to ``low`` or ``high`` with probability 1/2 each (seed 000: 90%
    of pixels set to 0 or 1). ``low``/``high`` default to the min/max of the ``x`` passed in, which for
    images in ``[0, 1]`` are 0 and 1 and for normalised images are the normalised black and white."""

    def __init__(
        self,
        fraction: float,
        pixel_fraction: float = 0.9,
        low: float | None = None,
        high: float | None = None,
    ) -> None:
        super().__init__(fraction)
        self.pixel_fraction = check_fraction("pixel_fraction", pixel_fraction)
        self.low = None if low is None else check_real("low", low)
        self.high = None if high is None else check_real("high", high)

    def _corrupt(self, x: Tensor, y: Tensor, idx: Tensor, generator: torch.Generator) -> None:
        _float_features(x, "ImpulseNoise")
        low = float(x.min()) if self.low is None else self.low
        high = float(x.max()) if self.high is None else self.high
        flat = x[idx].reshape(idx.numel(), -1)
        p = flat.shape[1]
        m = round(self.pixel_fraction * p)
        pixels = torch.rand((idx.numel(), p), generator=generator).argsort(dim=1)[:, :m].to(x.device)
        salt = torch.rand((idx.numel(), m), generator=generator).to(x.device) < 0.5
        values = torch.where(salt, torch.tensor(high, dtype=x.dtype), torch.tensor(low, dtype=x.dtype))
        flat.scatter_(1, pixels, values.to(x.device))
        x[idx] = flat.reshape(idx.numel(), *x.shape[1:])


@DATA_ATTACKS.register("backdoor", "target-label")
class BackdoorLabels(DataAttack):
    """Seed 000's backdoor label corruption: the labels of the chosen samples become ``target``."""

    def __init__(self, fraction: float, target: int = 0) -> None:
        super().__init__(fraction)
        self.target = check_int("target", target)

    def _corrupt(self, x: Tensor, y: Tensor, idx: Tensor, generator: torch.Generator) -> None:
        y[idx] = self.target


@DATA_ATTACKS.register("label-flip", "labelflipping")
class LabelFlip(DataAttack):
    """Label flipping ``y <- C - 1 - y`` on the chosen samples (``num_classes = C``)."""

    def __init__(self, fraction: float = 1.0, num_classes: int = 10) -> None:
        super().__init__(fraction)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)

    def _corrupt(self, x: Tensor, y: Tensor, idx: Tensor, generator: torch.Generator) -> None:
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise ValueError(
                f"LabelFlip(num_classes={self.num_classes}) got labels outside [0, {self.num_classes})"
            )
        y[idx] = self.num_classes - 1 - y[idx]


def poison_clients(
    attack: DataAttack,
    clients: Sequence[tuple[Tensor, Tensor]],
    byzantine: Iterable[int],
    seed: int,
) -> tuple[list[tuple[Tensor, Tensor]], dict[int, Tensor]]:
    """Apply ``attack`` to the local data ``(x, y)`` of each client index in ``byzantine``.

    Client ``i`` uses ``make_generator(seed, "data-attack", i)``. Returns the new client list (honest
    clients' tensors are passed through untouched) and each poisoned client's ``touched`` mask.
    """
    out = list(clients)
    touched: dict[int, Tensor] = {}
    for i in sorted(set(byzantine)):
        if not 0 <= i < len(clients):
            raise ValueError(f"byzantine client index {i} is outside [0, {len(clients)})")
        x, y = clients[i]
        x2, y2, mask = attack(x, y, generator=make_generator(seed, "data-attack", i))
        out[i] = (x2, y2)
        touched[i] = mask
    return out, touched


def get_data_attack(name: str, **params: Any) -> DataAttack:
    """Build the data attack registered as ``name`` (case-insensitive) with ``params``."""
    return DATA_ATTACKS.get(name, **params)
