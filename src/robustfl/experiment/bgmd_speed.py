"""``robustfl reproduce bgmd-speed``: seed 000's Figs 2-4 (Acharya et al. 2022), test accuracy against
wall-clock time for SGD, CMD, GMD and BGMD under impulse noise (Fig. 2), bit flip (Fig. 3) and backdoor
labels (Fig. 4), each at psi = 20%.

The regime the seed measured: the aggregators see the rows of ``G_t in R^{b x d}`` (per-sample or
per-group gradients of one step, :func:`robustfl.experiment.bgmd_table2.reading_overrides` with
``reading = "samples"``: many rows) and the GM oracle is solved to accuracy (``T = 100`` Weiszfeld steps,
relative tolerance ``1e-8``, for GMD and for BGMD's block GM alike). The seed's claim: BGMD reaches GMD's
accuracy 2.5-3x sooner (Figs 2-4 captions).

Time axis: the training seconds of each evaluation point (``wall_seconds`` minus the evaluation time,
which is the same work for every method). Speed-up of BGMD over GMD for one corruption:
``t_GMD(a) / t_BGMD(a)`` where ``t_X(a)`` is the first training time at which X's test accuracy reaches
``a`` = GMD's final accuracy minus ``TOLERANCE`` points; ``None`` if BGMD never reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustfl.experiment import bgmd_table2 as t2
from robustfl.experiment.config import ConfigError

CORRUPTIONS = ("impulse_20", "bitflip_20", "backdoor_20")
GM_ACCURATE = ["aggregator.params.T=100", "aggregator.params.tol=1e-8"]
TOLERANCE = 1.0  # accuracy points below GMD's final accuracy that count as "reached"


def cell_overrides(method: str, corruption: str, group: int) -> list[str]:
    """The table's config for (method, corruption), read per sample/group, with an accurate GM."""
    gm = GM_ACCURATE if method in ("gmd", "bgmd") else []
    return [*t2.reading_overrides(corruption, "samples", group), *gm]


def curve(records: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """``(training seconds, test accuracy %)`` of each evaluation of one run."""
    return [
        (
            float(r["wall_seconds"]) - float((r.get("seconds") or {}).get("eval", 0.0)),
            100.0 * r["test_accuracy"],
        )
        for r in records
        if r.get("test_accuracy") is not None
    ]


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    """The first time at which the accuracy reaches ``target`` (None if never)."""
    return next((t for t, acc in points if acc >= target), None)


def speedup(gmd: list[tuple[float, float]], bgmd: list[tuple[float, float]]) -> dict[str, float | None]:
    """GMD's target accuracy, both times to reach it and their ratio (see the module docstring)."""
    if not gmd:
        return {"target": None, "t_gmd": None, "t_bgmd": None, "speedup": None}
    target = gmd[-1][1] - TOLERANCE
    t_g, t_b = time_to(gmd, target), time_to(bgmd, target)
    ratio = None if t_g is None or t_b is None or t_b <= 0 else t_g / t_b
    return {"target": target, "t_gmd": t_g, "t_bgmd": t_b, "speedup": ratio}


def reproduce(
    out: Path,
    *,
    corruptions: list[str] | None = None,
    methods: list[str] | None = None,
    group: int = 4,
    rounds: int = 60,
    eval_every: int = 5,
    overrides: list[str] | tuple[str, ...] = (),
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every (corruption, method) one after another (timings need a quiet machine, not a pool)
    into ``out/<method>_<corruption>``, draw ``out/bgmd_speed.png`` and write ``out/speedup.md``.

    Returns ``{"curves": {corruption: {method: points}}, "speedup": {corruption: speedup(...)}}``.
    """
    from robustfl.experiment.config import load_config
    from robustfl.experiment.rundir import RunDir
    from robustfl.experiment.sweep import run_many
    from robustfl.experiment.table import write_tables

    corruptions = list(corruptions or CORRUPTIONS)
    methods = list(methods or t2.METHODS)
    for name, chosen, known in (("corruption", corruptions, t2.ALL_ROWS), ("method", methods, t2.METHODS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigError(
                f"config error: unknown {name} {', '.join(unknown)}; choose from: {', '.join(known)}"
            )
    cells = [(c, m) for c in corruptions for m in methods]
    configs = [
        load_config(
            t2.config_dir() / f"{m}_{c}.toml",
            [
                *cell_overrides(m, c, group),
                f"training.rounds={rounds}",
                f"training.eval_every={eval_every}",
                *overrides,
            ],
        )
        for c, m in cells
    ]
    dirs = [out / f"{m}_{c}" for c, m in cells]
    run_many(configs, dirs, workers=1, on_done=on_done)
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for (c, m), d in zip(cells, dirs, strict=True):
        curves.setdefault(c, {})[m] = curve(RunDir(d).read_metrics())
    ratios = {
        c: speedup(curves[c].get("gmd", []), curves[c].get("bgmd", []))
        for c in corruptions
        if "gmd" in curves[c] and "bgmd" in curves[c]
    }
    rows = [{"corruption": c, **r} for c, r in ratios.items()]
    write_tables(rows, ["corruption", "target", "t_gmd", "t_bgmd", "speedup"], out / "speedup")
    plot(curves, out / "bgmd_speed.png")
    return {"curves": curves, "speedup": ratios}


def plot(curves: dict[str, dict[str, list[tuple[float, float]]]], path: Path) -> Path:
    """One panel per corruption: test accuracy (%) against training seconds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for ax, (corruption, by_method) in zip(axes[0], curves.items(), strict=True):
        for method, points in by_method.items():
            ax.plot([t for t, _ in points], [a for _, a in points], marker=".", label=method.upper())
        ax.set_title(corruption.replace("_", " ") + "%")
        ax.set_xlabel("training seconds")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
