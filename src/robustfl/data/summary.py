"""A table of who holds what after ``partition``: sizes and label histograms per client."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rich.table import Table
from torch import Tensor

MAX_CLASS_COLUMNS = 16


def partition_summary(parts: Sequence[Tensor], labels: Tensor, num_classes: int) -> Table:
    """One row per client: sample count, number of distinct labels and the label histogram.

    With up to ``MAX_CLASS_COLUMNS`` classes the histogram is one column per class; with more
    (EMNIST's 62) it lists the three most frequent labels. The last row totals the assigned samples.
    """
    counts = torch.stack([torch.bincount(labels[p], minlength=num_classes) for p in parts])
    wide = num_classes <= MAX_CLASS_COLUMNS
    table = Table(title=f"{len(parts)} clients, {int(counts.sum())} of {labels.numel()} samples assigned")
    table.add_column("client", justify="right")
    table.add_column("samples", justify="right")
    table.add_column("labels", justify="right")
    if wide:
        for k in range(num_classes):
            table.add_column(str(k), justify="right")
    else:
        table.add_column("top labels (count)")
    for j, row in enumerate(counts):
        cells = [str(j), str(int(row.sum())), str(int((row > 0).sum()))]
        if wide:
            cells += [str(int(c)) if c else "·" for c in row]
        else:
            top = torch.argsort(row, descending=True, stable=True)[:3]
            cells.append(", ".join(f"{int(k)} ({int(row[k])})" for k in top if row[k] > 0))
        table.add_row(*cells)
    total = counts.sum(0)
    footer = ["all", str(int(total.sum())), str(int((total > 0).sum()))]
    footer += [str(int(c)) for c in total] if wide else [""]
    table.add_row(*footer, style="bold")
    return table
