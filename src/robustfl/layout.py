"""The parameter layout: where each named parameter lives in the flat vector every message is.

``ParameterLayout.of(model)`` lists the trainable parameters in ``model.named_parameters()`` order (the
order of :func:`robustfl.utils.flatten`), each with its name, shape and offset. Per-layer compressors
(PowerSGD, spectral ATOMO, per-layer QSGD), FedMA's matching and PUFFERFISH's factorisation read it
to find a layer in a ``Tensor[d]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class ParameterSlot:
    """One parameter: ``name``, ``shape`` and its ``offset`` in the flat vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def view(self, flat: Tensor) -> Tensor:
        """This parameter's values in ``flat`` (``[..., d]``: a leading batch dimension is kept)."""
        part = flat[..., self.offset : self.offset + self.numel]
        return part.reshape(*flat.shape[:-1], *self.shape)


@dataclass(frozen=True)
class ParameterLayout:
    """The ordered slots of a model's flat parameter vector."""

    slots: tuple[ParameterSlot, ...]

    @staticmethod
    def of(model: nn.Module) -> ParameterLayout:
        """The layout of ``model``'s trainable parameters."""
        slots, offset = [], 0
        for name, p in model.named_parameters():
            if p.requires_grad:
                slots.append(ParameterSlot(name, tuple(p.shape), offset))
                offset += p.numel()
        return ParameterLayout(tuple(slots))

    @property
    def dim(self) -> int:
        """``d``: the length of the flat vector."""
        return sum(s.numel for s in self.slots)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [s.shape for s in self.slots]

    def __getitem__(self, name: str) -> ParameterSlot:
        for s in self.slots:
            if s.name == name:
                return s
        raise ValueError(f"no parameter {name!r} in the layout; it has: {', '.join(self.names)}")

    def __iter__(self) -> Iterator[ParameterSlot]:
        return iter(self.slots)

    def __len__(self) -> int:
        return len(self.slots)
