"""Grid sweeps: ``--grid key=v1,v2`` lists expand to the cartesian product of ``--set`` overrides.

Every grid point is a full run in ``OUT/<key=value,...>/``; the sweep writes one table (``OUT/sweep.csv``,
``OUT/sweep.md``) with one row per point: the grid values, final and best test accuracy, final train loss,
whether it diverged, bits sent and wall seconds. Points run one after another, or in a process pool of
``workers`` processes (each a fresh interpreter, ``spawn``; give each ``OMP_NUM_THREADS`` threads / cores).
"""

from __future__ import annotations

import itertools
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from robustfl.experiment.config import ConfigError, ExperimentConfig, load_config

RESULT_COLUMNS = ["test_accuracy", "best_test_accuracy", "train_loss", "diverged", "bits_up", "wall_seconds"]


def split_values(text: str) -> list[str]:
    """Split ``v1,v2`` on the commas outside brackets/braces/quotes (so ``[1,2],[3]`` is two values)."""
    values, depth, quote, current = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += ch
    values.append(current.strip())
    return values


def parse_grid(specs: list[str] | tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``["training.lr=0.1,0.05", ...]`` -> ``[("training.lr", ["0.1", "0.05"]), ...]``."""
    grid = []
    for spec in specs:
        key, sep, rest = spec.partition("=")
        values = split_values(rest)
        if not sep or not key.strip() or any(v == "" for v in values):
            raise ConfigError(
                f"config error: --grid {spec!r}: expected key=v1,v2,... e.g. training.lr=0.1,0.05"
            )
        grid.append((key.strip(), values))
    return grid


def expand(grid: list[tuple[str, list[str]]]) -> list[list[str]]:
    """The cartesian product as lists of ``key=value`` assignments."""
    keys = [k for k, _ in grid]
    return [
        [f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
        for combo in itertools.product(*(v for _, v in grid))
    ]


def point_dir(assignments: list[str]) -> str:
    """A folder name for one grid point, safe on every file system."""
    return re.sub(r"[^A-Za-z0-9._=,-]+", "_", ",".join(assignments)) or "base"


def _run_point(config: ExperimentConfig, out: Path) -> dict[str, Any]:
    from robustfl.experiment.runner import run

    return run(config, out, quiet=True)


def run_many(
    configs: list[ExperimentConfig],
    dirs: list[Path],
    *,
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``configs[i]`` into ``dirs[i]`` (quietly), one by one or in a pool; summaries in input order."""
    summaries: list[dict[str, Any]] = []
    if workers <= 1:
        for cfg, d in zip(configs, dirs, strict=True):
            summaries.append(_run_point(cfg, d))
            if on_done is not None:
                on_done(summaries[-1])
        return summaries
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_point, cfg, d) for cfg, d in zip(configs, dirs, strict=True)]
        for fut in futures:
            summaries.append(fut.result())
            if on_done is not None:
                on_done(summaries[-1])
    return summaries


def sweep(
    config_path: str | Path | None,
    grid_specs: list[str] | tuple[str, ...],
    out: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every grid point and write the table; returns its rows (grid order).

    All configurations are validated before the first run starts, so a typo fails in a second.
    """
    out = Path(out)
    grid = parse_grid(grid_specs)
    points = expand(grid)
    configs = []
    for assignments in points:
        cfg = load_config(config_path, [*overrides, *assignments])
        cfg.name = f"{cfg.name}[{','.join(assignments)}]" if assignments else cfg.name
        configs.append(cfg)
    dirs = [out / point_dir(a) for a in points]
    summaries = run_many(configs, dirs, workers=workers, on_done=on_done)
    rows = []
    for assignments, summary, d in zip(points, summaries, dirs, strict=True):
        row: dict[str, Any] = {a.partition("=")[0]: a.partition("=")[2] for a in assignments}
        row.update(result_row(summary))
        row["run_dir"] = str(d)
        rows.append(row)
    from robustfl.experiment.table import write_tables

    write_tables(rows, [k for k, _ in grid] + RESULT_COLUMNS + ["run_dir"], out / "sweep")
    return rows


def result_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The result columns of one run's summary."""
    final = summary.get("final", {})
    return {
        "test_accuracy": final.get("test_accuracy"),
        "best_test_accuracy": summary.get("best_test_accuracy"),
        "train_loss": final.get("train_loss"),
        "diverged": summary.get("diverged"),
        "bits_up": summary.get("bits_up"),
        "wall_seconds": round(float(summary.get("wall_seconds", 0.0)), 2),
    }
