"""Validators of constructor arguments shared by every package (the bottom of the import graph).

Each returns the validated value or raises one ``ValueError`` that names the argument and what it
must be, so a bad config value surfaces as one readable line.
"""

from __future__ import annotations

import math


def check_int(name: str, value: object, minimum: int = 0) -> int:
    """An integer ``>= minimum`` (``bool`` is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """``True`` or ``False`` (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_positive(name: str, value: object, allow_zero: bool = False) -> float:
    """A finite real ``> 0`` (or ``>= 0`` with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not (v >= 0 if allow_zero else v > 0) or v != v or v == float("inf"):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return v


def check_real(name: str, value: object) -> float:
    """A finite real number of any sign."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def check_fraction(name: str, value: object, upper_open: bool = False) -> float:
    """A number in ``[0, 1]`` (``[0, 1)`` with ``upper_open``)."""
    v = check_positive(name, value, allow_zero=True)
    if v > 1 or (upper_open and v == 1):
        raise ValueError(f"{name} must be in [0, 1{')' if upper_open else ']'}, got {value!r}")
    return v
