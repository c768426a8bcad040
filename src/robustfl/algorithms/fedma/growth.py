"""The model growth rate of FedMA's Tables 5.1–5.2 and 5.6–5.7: #global / #original parameters."""

from __future__ import annotations

from dataclasses import dataclass

from robustfl.algorithms.fedma.layers import StateDict


@dataclass(frozen=True)
class GrowthRow:
    """One parameter tensor (or ``"total"``): its global shape and both parameter counts."""

    name: str
    shape: tuple[int, ...]
    global_count: int
    original_count: int

    @property
    def rate(self) -> float:
        """``global_count / original_count`` (e.g. 1.11 for Table 5.7's VGG-9)."""
        return self.global_count / self.original_count


def growth_table(original: StateDict, grown: StateDict) -> list[GrowthRow]:
    """Per-parameter growth of ``grown`` over ``original`` (same names), then the total (Tables 5.6/5.7)."""
    if original.keys() != grown.keys():
        raise ValueError(
            "original and grown must have the same parameter names (the same architecture at other widths); "
            f"differ in {sorted(original.keys() ^ grown.keys())}"
        )
    rows = [GrowthRow(k, tuple(grown[k].shape), grown[k].numel(), original[k].numel()) for k in original]
    total = GrowthRow("total", (), sum(r.global_count for r in rows), sum(r.original_count for r in rows))
    return [*rows, total]
