"""One check shared by the Elias-gamma and Elias-omega fuzz tests: the vectorised row decoder, run with
a given chunk size, agrees with a sequential reference parser (both may refuse the bits)."""

from collections.abc import Callable

import numpy as np

from robustfl.compressors import codecs

Decoded = list[tuple[int, int]] | None


def or_none(parse: Callable[[], list[tuple[int, int]]]) -> Decoded:
    """``parse()``, or ``None`` when it refuses the bits with a ValueError."""
    try:
        return parse()
    except ValueError:
        return None


def decode_in_chunks(decode_row: Callable, bits: list[int], d: int, level_bits: int, chunk: int) -> Decoded:
    """``decode_row`` on ``bits`` with ``codecs._CHUNK = chunk`` as ``(position, level)`` pairs, or
    ``None`` if it refuses them."""
    saved = codecs._CHUNK
    codecs._CHUNK = chunk
    try:

        def parse() -> list[tuple[int, int]]:
            pos, levels = decode_row(np.array(bits, dtype=bool), d, level_bits)
            return list(zip(pos.tolist(), levels.tolist(), strict=True))

        return or_none(parse)
    finally:
        codecs._CHUNK = saved
