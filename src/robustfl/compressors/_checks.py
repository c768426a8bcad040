"""Parameter validation shared by the compressors (one clear ``ValueError`` per mistake)."""

from __future__ import annotations

from robustfl.checks import check_int, check_positive


def resolve_k(k: int | None, ratio: float | None, d: int) -> int:
    """The number of kept coordinates from exactly one of ``k`` and ``ratio`` (clipped to ``[1, d]``:
    a ``k`` above ``d`` keeps every coordinate)."""
    if k is not None:
        return min(k, d)
    assert ratio is not None
    return max(1, min(d, round(ratio * d)))


def check_k_ratio(k: object, ratio: object, who: str, k_name: str = "k") -> None:
    """Exactly one of ``k >= 1`` and ``0 < ratio <= 1`` must be given (``k_name``: RandL calls it ``l``)."""
    if (k is None) == (ratio is None):
        raise ValueError(f"{who} needs exactly one of {k_name} (coordinates kept) or ratio (fraction kept)")
    if k is not None:
        check_int(k_name, k, minimum=1)
    else:
        r = check_positive("ratio", ratio)
        if r > 1:
            raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")


__all__ = ["check_int", "check_k_ratio", "check_positive", "resolve_k"]
