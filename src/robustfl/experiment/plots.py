"""Plots of finished (or running) runs: test accuracy vs round and vs wall-clock seconds, one line per run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from robustfl.experiment.rundir import RunDir


def run_label(rd: RunDir) -> str:
    """The run's ``name`` from its config, else its folder name."""
    import tomllib

    if rd.config_path.exists():
        name = tomllib.loads(rd.config_path.read_text(encoding="utf-8")).get("name")
        if isinstance(name, str) and name:
            return name
    return rd.path.name


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, metric: str = "test_accuracy") -> Path:
    """Draw ``metric`` vs round (left) and vs wall seconds (right) for every run; save a PNG at ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_round, ax_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for path in run_dirs:
        rd = RunDir(path)
        if not rd.metrics_path.exists():
            raise ValueError(f"{rd.path}: not a run directory (no metrics.jsonl)")
        records = [r for r in rd.read_metrics() if r.get(metric) is not None]
        label = run_label(rd)
        ax_round.plot([r["round"] for r in records], [r[metric] for r in records], marker=".", label=label)
        ax_time.plot(
            [r["wall_seconds"] for r in records], [r[metric] for r in records], marker=".", label=label
        )
    ax_round.set_xlabel("round")
    ax_time.set_xlabel("wall-clock seconds")
    ax_round.set_ylabel(metric.replace("_", " "))
    for ax in (ax_round, ax_time):
        ax.grid(alpha=0.3)
    ax_time.legend(fontsize="small", loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
