"""``robustfl demo``: one short robust run per aggregation rule on the embedded data, a table and a plot.

The base configuration is the packaged ``configs/demo.toml`` (10 workers, 2 of them sending ``-100 g``,
an MLP on the embedded MNIST sample); the demo swaps only the aggregator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustfl.experiment.config import AggregatorConfig, load_config

RULES: dict[str, dict[str, Any]] = {
    "SGD (mean)": {"name": "mean"},
    "CMD (median)": {"name": "median"},
    "GMD (geometric median)": {"name": "geometric-median", "params": {"T": 10, "tol": 1e-5}},
    "BGMD (k = 10% of d)": {"name": "bgmd", "params": {"ratio": 0.1, "T": 10, "tol": 1e-5}},
}


def demo_config_path() -> Path:
    return Path(__file__).resolve().parent.parent / "configs" / "demo.toml"


def run_demo(
    out: Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    quiet: bool = False,
    threads: int | None = None,
) -> tuple[list[dict[str, Any]], Path]:
    """Run every rule of :data:`RULES` into ``out/<i>``; return the table rows and the plot's path."""
    from robustfl.experiment.plots import plot_runs
    from robustfl.experiment.runner import run

    rows, dirs = [], []
    for i, (label, rule) in enumerate(RULES.items()):
        cfg = load_config(demo_config_path(), overrides)
        cfg.name = label
        cfg.aggregator = AggregatorConfig.model_validate(rule)
        run_dir = out / f"{i}-{rule['name']}"
        summary = run(cfg, run_dir, quiet=quiet, threads=threads)
        final = summary["final"]
        rows.append(
            {
                "rule": label,
                "final accuracy": final.get("test_accuracy"),
                "best accuracy": summary["best_test_accuracy"],
                "diverged": "yes" if summary["diverged"] else "no",
                "rounds": summary["rounds"],
                "seconds": round(summary["wall_seconds"], 1),
            }
        )
        dirs.append(run_dir)
    return rows, plot_runs(dirs, out / "accuracy.png", title="demo: 10 workers, 2 send -100 g")
