"""Plots of finished (or running) runs: a metric against rounds, wall-clock seconds or bits sent.

``plot_runs`` accepts run directories and folders of runs (a sweep or a demo folder): every sub-folder
holding a ``metrics.jsonl`` is a run. Legends are short and distinct: a sweep point's label keeps only
the grid values that differ between the plotted runs (``name=median, lr=0.1``). A diverged run is drawn
dashed, ends in a cross and says ``(diverged)`` in the legend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustfl.experiment.rundir import RunDir

# --x choice -> (metrics.jsonl field, axis label)
X_AXES: dict[str, tuple[str, str]] = {
    "round": ("round", "round"),
    "wall": ("wall_seconds", "wall-clock seconds"),
    "bits": ("bits_up", "bits sent by the workers (cumulative)"),
}
_POINT = re.compile(r"^(?P<base>.*)\[(?P<assignments>.*)\]$")


def run_label(rd: RunDir) -> str:
    """The run's ``name`` from its config, else its folder name."""
    import tomllib

    if rd.config_path.exists():
        name = tomllib.loads(rd.config_path.read_text(encoding="utf-8")).get("name")
        if isinstance(name, str) and name:
            return name
    return rd.path.name


def expand_run_dirs(paths: Sequence[str | Path]) -> list[RunDir]:
    """Run directories as given, and the runs inside a folder of runs (a sweep, a demo)."""
    runs = []
    for path in map(Path, paths):
        rd = RunDir(path)
        if rd.metrics_path.exists():
            runs.append(rd)
            continue
        inner = sorted(p for p in path.iterdir() if (p / "metrics.jsonl").exists()) if path.is_dir() else []
        if not inner:
            raise ValueError(f"{path}: not a run directory (no metrics.jsonl), nor a folder of runs")
        runs += [RunDir(p) for p in inner]
    return runs


def short_labels(names: Sequence[str]) -> list[str]:
    """Legend labels: sweep points ``base[k=v,...]`` keep only the values that differ; all distinct."""
    parsed = []
    for name in names:
        match = _POINT.match(name)
        pairs = dict(a.partition("=")[::2] for a in match["assignments"].split(",")) if match else {}
        parsed.append((match["base"] if match else name, pairs))
    keys = list(dict.fromkeys(k for _, pairs in parsed for k in pairs))
    varying = [k for k in keys if len({pairs.get(k) for _, pairs in parsed}) > 1]
    labels = []
    for (base, pairs), name in zip(parsed, names, strict=True):
        shown = [f"{k.rsplit('.', 1)[-1]}={pairs[k]}" for k in varying if k in pairs]
        labels.append(", ".join(shown) if shown else (base if pairs else name))
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if counts[label] == 1 else f"{label} #{seen[label]}")
    return out


def _diverged(rd: RunDir) -> bool:
    if not rd.summary_path.exists():
        return False
    try:
        return bool(json.loads(rd.summary_path.read_text(encoding="utf-8")).get("diverged"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _check_metric(records: list[list[dict[str, Any]]], metric: str) -> None:
    present = sorted(
        {k for rs in records for r in rs for k, v in r.items() if isinstance(v, int | float) and k != "round"}
    )
    if not any(r.get(metric) is not None for rs in records for r in rs):
        raise ValueError(f"--metric: no run has {metric!r}; metrics present: {', '.join(present) or 'none'}")


def plot_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    metric: str = "test_accuracy",
    *,
    x: Sequence[str] = ("round", "wall"),
    title: str | None = None,
) -> Path:
    """Draw ``metric`` against each axis of ``x`` (round, wall, bits) for every run; save a PNG at ``out``."""
    unknown = [a for a in x if a not in X_AXES]
    if unknown or not x:
        raise ValueError(
            f"--x: unknown axis {', '.join(unknown) or '(none)'}; choose from {', '.join(X_AXES)}"
        )
    runs = expand_run_dirs(run_dirs)
    records = [rd.read_metrics() for rd in runs]
    _check_metric(records, metric)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(x), figsize=(5.5 * len(x), 4), sharey=True, squeeze=False)
    labels = short_labels([run_label(rd) for rd in runs])
    for rd, rs, label in zip(runs, records, labels, strict=True):
        points = [r for r in rs if r.get(metric) is not None]
        diverged = _diverged(rd)
        for ax, axis in zip(axes[0], x, strict=True):
            field = X_AXES[axis][0]
            xs = [r.get(field, 0) for r in points]
            (line,) = ax.plot(
                xs,
                [r[metric] for r in points],
                marker=".",
                linestyle="--" if diverged else "-",
                label=f"{label} (diverged)" if diverged else label,
            )
            if diverged and points:
                ax.plot(xs[-1:], [points[-1][metric]], marker="x", markersize=9, color=line.get_color())
    for ax, axis in zip(axes[0], x, strict=True):
        ax.set_xlabel(X_AXES[axis][1])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "))
    axes[0][-1].legend(fontsize="small", loc="best")
    names = {_POINT.sub(r"\g<base>", run_label(rd)) for rd in runs}
    fig.suptitle(title or f"{metric.replace('_', ' ')}: {', '.join(sorted(names))[:80]}")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_xy(
    panels: Sequence[tuple[str, str, dict[str, list[tuple[float, float]]]]],
    out: str | Path,
    *,
    ylabel: str = "test accuracy",
) -> Path:
    """Summary figures (a result against a setting): one panel per ``(title, xlabel, {label: [(x, y)]})``,
    one line per label, points sorted by ``x``, y from 0 to 1; save a PNG at ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, xlabel, lines) in zip(axes[0], panels, strict=True):
        for label, points in lines.items():
            xs, ys = zip(*sorted(points), strict=True) if points else ((), ())
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(fontsize="small", loc="best")
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
