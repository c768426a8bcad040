"""Result tables: one list of row dicts written as CSV and markdown, and printed with rich."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table


def fmt(value: Any) -> str:
    """A cell: floats with 4 significant digits, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)).replace("|", "\\|") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: "" if r.get(c) is None else r.get(c) for c in columns})
    return buffer.getvalue()


def to_rich(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(fmt(r.get(c)) for c in columns))
    return table


def print_table(
    console: Any, rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None
) -> None:
    """A rich table on a terminal; full-width markdown when the output is piped or logged (no cell cut)."""
    if console.is_terminal:
        console.print(to_rich(rows, columns, title=title))
        return
    text = (f"{title}\n\n" if title else "") + to_markdown(rows, columns)
    console.file.write(text)
    console.file.flush()


def write_tables(rows: Sequence[dict[str, Any]], columns: Sequence[str], stem: Path) -> tuple[Path, Path]:
    """Write ``stem.csv`` and ``stem.md``; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    csv_path.write_text(to_csv(rows, columns), encoding="utf-8")
    md_path.write_text(to_markdown(rows, columns), encoding="utf-8")
    return csv_path, md_path
