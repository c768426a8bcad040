"""Layer blocks of a flat parameter vector, for the compressors that work per matrix (PowerSGD, ATOMO).

A parameter of shape ``(out, *rest)`` with at least two dimensions is a matrix ``[out, prod(rest)]``
(a conv kernel ``[out, in, kh, kw]`` becomes ``[out, in * kh * kw]``); 0-D and 1-D parameters (biases,
norms) are vector blocks, sent uncompressed.
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


def check_dimension(block_list: list[Block], d: int, who: str) -> None:
    total = sum(b.numel for b in block_list)
    if total != d:
        raise ValueError(
            f"{who}: the shapes cover {total} parameters but x has d={d}; pass the model's shapes"
        )
