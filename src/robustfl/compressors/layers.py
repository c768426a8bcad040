"""Layer blocks of a flat parameter vector, for the compressors that work per matrix (PowerSGD, ATOMO).

A parameter of shape ``(out, *rest)`` with at least two dimensions is a matrix ``[out, prod(rest)]``
(a conv kernel ``[out, in, kh, kw]`` becomes ``[out, in * kh * kw]``); 0-D and 1-D parameters (biases,
norms) are vector blocks, sent uncompressed.

``matrix_view(shape, conv)`` chooses how a per-layer compressor sees one parameter as a matrix:
``conv="out"`` is the ``[out, in k_h k_w]`` view above; ``conv="pairs"`` is the reshape of the ATOMO
experiments (Wang et al., NeurIPS 2018, §5; seed 004 §3.5), a ``[x, y, k, k]`` kernel as
``[x y / 2, 2 k^2]`` — two consecutive ``k x k`` filters per row, a plain row-major reshape of the
flat vector. Both are valid atomic decompositions of the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """``numel`` entries of the flat vector from ``offset``; a matrix ``rows x cols`` when ``cols > 0``."""

    offset: int
    numel: int
    rows: int
    cols: int

    @property
    def is_matrix(self) -> bool:
        return self.cols > 0


def parse_shapes(shapes: object) -> list[tuple[int, ...]]:
    """Validate a list of parameter shapes (e.g. ``[p.shape for p in model.parameters()]``)."""
    if not isinstance(shapes, Sequence) or isinstance(shapes, str) or not shapes:
        raise ValueError(f"shapes must be a non-empty list of parameter shapes, got {shapes!r}")
    out = []
    for s in shapes:
        dims = (s,) if isinstance(s, int) else tuple(s) if isinstance(s, Sequence) else None
        if dims is None or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in dims):
            raise ValueError(f"each shape must be a tuple of positive integers, got {s!r}")
        out.append(dims)
    return out


def blocks(shapes: list[tuple[int, ...]]) -> list[Block]:
    """The blocks of the flat vector ``flatten(params)`` for parameters of ``shapes``."""
    out, offset = [], 0
    for s in shapes:
        numel = math.prod(s)
        matrix = len(s) >= 2 and s[0] > 1 and numel // s[0] > 1
        out.append(Block(offset, numel, s[0] if matrix else 1, numel // s[0] if matrix else 0))
        offset += numel
    return out


CONV_VIEWS = ("out", "pairs")


def matrix_view(shape: tuple[int, ...], conv: str = "out") -> tuple[int, ...]:
    """The shape a per-layer compressor sees for a parameter of ``shape``.

    1-D and 0-D parameters stay vectors; 2-D ones stay as they are; a 4-D conv kernel
    ``[x, y, k_h, k_w]`` becomes ``[x, y k_h k_w]`` (``conv="out"``) or ``[x y / 2, 2 k_h k_w]``
    (``conv="pairs"``; when ``x y`` is odd, ``[x y, k_h k_w]``). Other ranks: ``[shape[0], rest]``.
    """
    if conv not in CONV_VIEWS:
        raise ValueError(f"conv must be one of {CONV_VIEWS}, got {conv!r}")
    if len(shape) <= 2:
        return tuple(shape)
    numel = math.prod(shape)
    if len(shape) == 4 and conv == "pairs":
        channels, kernel = shape[0] * shape[1], shape[2] * shape[3]
        return (channels // 2, 2 * kernel) if channels % 2 == 0 else (channels, kernel)
    return (shape[0], numel // shape[0])


def check_dimension(block_list: list[Block], d: int, who: str) -> None:
    total = sum(b.numel for b in block_list)
    if total != d:
        raise ValueError(
            f"{who}: the shapes cover {total} parameters but x has d={d}; pass the model's shapes"
        )
