"""Grid sweeps: ``--grid key=v1,v2`` lists expand to the cartesian product of ``--set`` overrides.

Every grid point is a full run in ``OUT/<key=value,...>/``; the sweep writes one table (``OUT/sweep.csv``,
``OUT/sweep.md``) with one row per point: the grid values, final and best test accuracy, final train loss,
whether it diverged, bits sent and wall seconds. When the grid varies ``training.seed`` it also writes
``OUT/sweep_seeds.csv`` / ``.md``: one row per point without the seed, with the mean ± std over seeds.

Every point's configuration is checked (:func:`robustfl.experiment.preflight.check_config`) before the
first run starts. Points run one after another, or in a process pool of ``workers`` processes (each a
fresh interpreter, ``spawn``, importing the config's ``imports``); the ``workers`` runs share the cores
when their thread count is chosen. ``resume=True`` skips finished points and continues partial ones from
their newest checkpoint.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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


SEED_KEY = "training.seed"


def _run_point(
    config: ExperimentConfig, out: Path, resume: bool, threads: int | None, concurrent: int
) -> dict[str, Any]:
    from robustfl.experiment.runner import run

    return run(config, out, quiet=True, resume=resume, threads=threads, concurrent=concurrent, notify=None)


def point_state(config: ExperimentConfig, out: Path) -> str:
    """``"done"`` (finished: its summary reached the configured rounds or diverged), ``"partial"``
    (started) or ``"new"``."""
    from robustfl.experiment.rundir import RunDir

    rd = RunDir(out)
    if rd.summary_path.exists():
        summary = rd.read_summary()
        if summary.get("diverged") or int(summary.get("rounds", 0)) >= config.training.rounds:
            return "done"
    return "partial" if rd.config_path.exists() else "new"


def run_many(
    configs: list[ExperimentConfig],
    dirs: list[Path],
    *,
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Run ``configs[i]`` into ``dirs[i]`` (quietly), one by one or in a pool; summaries in input order.

    With ``resume`` a finished point is read back instead of run, a partial one continues."""
    from robustfl.experiment.rundir import RunDir

    states = [point_state(c, d) if resume else "new" for c, d in zip(configs, dirs, strict=True)]
    summaries: dict[int, dict[str, Any]] = {}
    todo = []
    for i, state in enumerate(states):
        if state == "done":
            summaries[i] = RunDir(dirs[i]).read_summary()
            if on_done is not None:
                on_done(summaries[i])
        else:
            todo.append(i)
    concurrent = max(1, min(workers, len(todo)))
    if workers <= 1:
        for i in todo:
            summaries[i] = _run_point(configs[i], dirs[i], states[i] == "partial", threads, 1)
            if on_done is not None:
                on_done(summaries[i])
        return [summaries[i] for i in range(len(configs))]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            i: pool.submit(_run_point, configs[i], dirs[i], states[i] == "partial", threads, concurrent)
            for i in todo
        }
        for i, fut in futures.items():
            summaries[i] = fut.result()
            if on_done is not None:
                on_done(summaries[i])
    return [summaries[i] for i in range(len(configs))]


@dataclass
class SweepPlan:
    """A checked sweep: the grid, one config and run directory per point, the distinct warnings."""

    out: Path
    grid: list[tuple[str, list[str]]]
    points: list[list[str]]
    configs: list[ExperimentConfig]
    dirs: list[Path]
    warnings: list[str]
    resume: bool


def plan(
    config_path: str | Path | None,
    grid_specs: list[str] | tuple[str, ...],
    out: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    imports: list[str] | tuple[str, ...] = (),
) -> SweepPlan:
    """Load and check every grid point (:func:`robustfl.experiment.preflight.check_config`) before
    anything runs, so a typo in the last point fails in a second and creates nothing."""
    from robustfl.experiment.preflight import check_config

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"config error: --out: {out} is a file; name a folder for the sweep")
    grid = parse_grid(grid_specs)
    points = expand(grid)
    configs = []
    warnings: dict[str, None] = {}
    for assignments in points:
        cfg = load_config(config_path, [*overrides, *assignments])
        cfg.name = f"{cfg.name}[{','.join(assignments)}]" if assignments else cfg.name
        cfg.imports = [*cfg.imports, *(m for m in imports if m not in cfg.imports)]
        try:
            warnings.update(dict.fromkeys(check_config(cfg)))
        except ConfigError as err:
            where = f" (grid point {','.join(assignments)})" if assignments else ""
            raise ConfigError(f"{err}{where}") from None
        configs.append(cfg)
    dirs = [out / point_dir(a) for a in points]
    if resume:  # a started point must be continued with its own config, or its results would be stale
        from robustfl.experiment.rundir import RunDir
        from robustfl.experiment.runner import check_resumable

        for cfg, d, assignments in zip(configs, dirs, points, strict=True):
            if (d / "config.toml").exists():
                try:
                    check_resumable(RunDir(d), cfg.to_dict())
                except ConfigError as err:
                    raise ConfigError(f"{err} (grid point {','.join(assignments)})") from None
    else:
        taken = [d for d in dirs if (d / "config.toml").exists()]
        if taken:
            raise ConfigError(
                f"config error: --out: {out} already holds this sweep's runs ({taken[0].name}, ...); "
                f"pass --resume to finish it, or another --out"
            )
    return SweepPlan(out, grid, points, configs, dirs, list(warnings), resume)


def execute(
    sweep_plan: SweepPlan,
    *,
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Run a planned sweep and write its table(s); returns the per-point rows (grid order)."""
    p = sweep_plan
    summaries = run_many(
        p.configs, p.dirs, workers=workers, on_done=on_done, resume=p.resume, threads=threads
    )
    rows = []
    for assignments, summary, d in zip(p.points, summaries, p.dirs, strict=True):
        row: dict[str, Any] = {a.partition("=")[0]: a.partition("=")[2] for a in assignments}
        row.update(result_row(summary))
        row["run_dir"] = str(d)
        rows.append(row)
    from robustfl.experiment.table import write_tables

    keys = [k for k, _ in p.grid]
    write_tables(rows, keys + RESULT_COLUMNS + ["run_dir"], p.out / "sweep")
    if SEED_KEY in keys:
        others = [k for k in keys if k != SEED_KEY]
        write_tables(over_seeds(rows, others), [*others, *SEED_COLUMNS], p.out / "sweep_seeds")
    return rows


def sweep(
    config_path: str | Path | None,
    grid_specs: list[str] | tuple[str, ...],
    out: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
    threads: int | None = None,
    imports: list[str] | tuple[str, ...] = (),
    notify: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`plan` then :func:`execute`; ``notify`` receives each distinct warning once."""
    checked = plan(config_path, grid_specs, out, overrides=overrides, resume=resume, imports=imports)
    for warning in checked.warnings:
        if notify is not None:
            notify(f"warning: {warning}")
    return execute(checked, workers=workers, on_done=on_done, threads=threads)


SEED_COLUMNS = ["seeds", "test_accuracy", "best_test_accuracy", "train_loss", "diverged", "wall_seconds"]


def over_seeds(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """One row per value of ``keys`` (the grid without the seed): ``mean ± std`` over its seeds.

    The std is the sample standard deviation (n - 1); a metric missing in a run (diverged before any
    evaluation) is left out of that metric's mean; ``diverged`` counts the seeds that diverged.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for values, members in groups.items():
        row = dict(zip(keys, values, strict=True))
        row["seeds"] = len(members)
        for column in ("test_accuracy", "best_test_accuracy", "train_loss", "wall_seconds"):
            row[column] = mean_std([m.get(column) for m in members])
        row["diverged"] = f"{sum(bool(m.get('diverged')) for m in members)}/{len(members)}"
        out.append(row)
    return out


def mean_std(values: list[Any]) -> str | None:
    """``"0.8123 ± 0.0100"`` over the finite numbers of ``values`` (``± 0`` for one), None if there are none."""
    import statistics

    numbers = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(float(v))]
    if not numbers:
        return None
    std = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    return f"{statistics.fmean(numbers):.4g} ± {std:.2g}"


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
