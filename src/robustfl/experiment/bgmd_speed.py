"""``robustfl reproduce bgmd-speed``: seed 000's Figs 2-4 (Acharya et al. 2022), test accuracy against
training time for SGD, CMD, GMD and BGMD under impulse noise (Fig. 2), bit flip (Fig. 3) and backdoor
labels (Fig. 4), each at psi = 20%.

The regime the seed measured: the aggregators see the rows of ``G_t in R^{b x d}`` (per-sample or
per-group gradients of one step, :func:`robustfl.experiment.bgmd_table2.reading_overrides` with
``reading = "samples"``: many rows) and the GM oracle is solved to accuracy (``T = 100`` Weiszfeld steps,
relative tolerance ``1e-8``, for GMD and for BGMD's block GM alike). The seed's claim: BGMD reaches GMD's
accuracy 2.5-3x sooner (Figs 2-4 captions; the seed plots wall-clock time).

Time axis (``clock``): ``"cpu"`` (default) = the process's CPU seconds spent in training steps (the run's
``cpu_seconds``: ``time.process_time()`` with one torch thread, which leaves out the time other jobs hold
the cores; memory contention from them still lengthens it, since the GM streams the ``rows x d`` matrix at
every Weiszfeld step, so runs made at very different loads compare only roughly: docs/RESULTS.md);
``"wall"`` = wall-clock seconds minus the evaluation time. Evaluation is excluded from both (it is the same
work for every method). For one corruption and an accuracy level ``a``, ``t_X(a)`` is
the first time at which method X's test accuracy reaches ``a`` (``None``: never), and BGMD's speed-up
over GMD is ``t_GMD(a) / t_BGMD(a)``, read at ``a`` = GMD's final accuracy minus ``TOLERANCE`` points
(the seed's "reaches GMD's accuracy") and at the fixed ``LEVELS``.

What bounds it: a round costs ``c + a`` (gradients ``c``, aggregation ``a``); with the aggregation share
``s = a / (c + a)`` no cheaper aggregator can make a round more than ``1 / (1 - s)`` times faster
(:func:`round_bound`), so a 2.5x speed-up at equal rounds needs ``s >= 60%``.
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
LEVELS = (70.0, 80.0)  # fixed test accuracies (%) whose times are also compared
CLOCKS = ("cpu", "wall")
CLOCK_LABELS = {"cpu": "training CPU seconds", "wall": "training wall-clock seconds"}

Points = list[tuple[float, float]]


def cell_overrides(method: str, corruption: str, group: int) -> list[str]:
    """The table's config for (method, corruption), read per sample/group, with an accurate GM."""
    gm = GM_ACCURATE if method in ("gmd", "bgmd") else []
    return [*t2.reading_overrides(corruption, "samples", group), *gm]


def _check_clock(clock: str) -> None:
    if clock not in CLOCKS:
        raise ConfigError(f"config error: unknown clock {clock!r}; choose one of: {', '.join(CLOCKS)}")


def curve(records: list[dict[str, Any]], clock: str = "cpu") -> Points:
    """``(training seconds on ``clock``, test accuracy %)`` of each evaluation of one run."""
    _check_clock(clock)
    points = []
    for r in records:
        if r.get("test_accuracy") is None:
            continue
        if clock == "wall":
            t = float(r["wall_seconds"]) - float((r.get("seconds") or {}).get("eval", 0.0))
        elif "cpu_seconds" in r:
            t = float(r["cpu_seconds"])
        else:
            raise ConfigError(
                f"config error: clock 'cpu': the metrics of round {r.get('round')} have no cpu_seconds "
                "(a run written before CPU time was recorded); pass --clock wall or run it again"
            )
        points.append((t, 100.0 * float(r["test_accuracy"])))
    return points


def time_to(points: Points, target: float) -> float | None:
    """The first time at which the accuracy reaches ``target`` (None if never)."""
    return next((t for t, acc in points if acc >= target), None)


def rounds_to(records: list[dict[str, Any]], target: float) -> int | None:
    """The first evaluated round whose test accuracy (%) reaches ``target`` (None if never)."""
    return next(
        (
            int(r["round"])
            for r in records
            if r.get("test_accuracy") is not None and 100.0 * float(r["test_accuracy"]) >= target
        ),
        None,
    )


def ratio(slow: float | None, fast: float | None) -> float | None:
    """``slow / fast``, or None when either time is missing (a level not reached)."""
    return None if slow is None or fast is None or fast <= 0 else slow / fast


def speedup(gmd: Points, bgmd: Points) -> dict[str, float | None]:
    """GMD's target accuracy, both times to reach it and their ratio (see the module docstring)."""
    if not gmd:
        return {"target": None, "t_gmd": None, "t_bgmd": None, "speedup": None}
    target = gmd[-1][1] - TOLERANCE
    t_g, t_b = time_to(gmd, target), time_to(bgmd, target)
    return {"target": target, "t_gmd": t_g, "t_bgmd": t_b, "speedup": ratio(t_g, t_b)}


def round_bound(share: float) -> float:
    """The largest round speed-up any aggregator can give when aggregation is ``share`` of a round."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share!r}")
    return 1.0 / (1.0 - share)


def run_costs(summary: dict[str, Any]) -> dict[str, float | None]:
    """One finished run's cost per round: CPU and wall-clock seconds (evaluation excluded) and the
    aggregation share ``s`` (the aggregate phase's share of the step phases' seconds)."""
    rounds = max(int(summary.get("rounds", 0)), 1)
    phases = {k: float(v) for k, v in (summary.get("seconds") or {}).items() if k != "eval"}
    step = sum(phases.values())
    cpu = summary.get("cpu_seconds")
    return {
        "cpu_per_round": None if cpu is None else float(cpu) / rounds,
        "wall_per_round": (
            float(summary.get("wall_seconds", 0.0)) - (summary.get("seconds") or {}).get("eval", 0.0)
        )
        / rounds,
        "aggregate_share": phases.get("aggregate", 0.0) / step if step > 0 else None,
    }


def compare(curves: dict[str, Points], levels: tuple[float, ...] = LEVELS) -> dict[str, float | None]:
    """BGMD against GMD for one corruption: :func:`speedup` plus the speed-up at each fixed level."""
    gmd, bgmd = curves.get("gmd", []), curves.get("bgmd", [])
    out = speedup(gmd, bgmd)
    for level in levels:
        out[f"speedup_{level:g}"] = ratio(time_to(gmd, level), time_to(bgmd, level))
    return out


def reproduce(
    out: Path,
    *,
    corruptions: list[str] | None = None,
    methods: list[str] | None = None,
    group: int = 4,
    rounds: int = 60,
    eval_every: int = 5,
    clock: str = "cpu",
    resume: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every (corruption, method) one after another into ``out/<method>_<corruption>`` (``resume``:
    finished runs are read back, so the tables and figure can be redrawn), draw ``out/bgmd_speed.png``
    and write ``out/speedup.md`` (BGMD against GMD per corruption) and ``out/runs.md`` (every run's
    rounds and times to the levels and its costs per round).

    Returns ``{"curves": {corruption: {method: points}}, "speedup": {corruption: compare(...)},
    "runs": [row, ...]}``.
    """
    from robustfl.experiment.config import load_config
    from robustfl.experiment.rundir import RunDir
    from robustfl.experiment.sweep import run_many
    from robustfl.experiment.table import write_tables

    _check_clock(clock)
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
    summaries = run_many(configs, dirs, workers=1, on_done=on_done, resume=resume)
    curves: dict[str, dict[str, Points]] = {}
    records = {cell: RunDir(d).read_metrics() for cell, d in zip(cells, dirs, strict=True)}
    for (c, m), rows in records.items():
        curves.setdefault(c, {})[m] = curve(rows, clock)
    ratios = {c: compare(curves[c]) for c in corruptions if "gmd" in curves[c] and "bgmd" in curves[c]}
    costs = {cell: run_costs(summary) for cell, summary in zip(cells, summaries, strict=True)}
    for c, row in ratios.items():
        share = costs[(c, "gmd")]["aggregate_share"]
        row["gmd_share"] = share
        row["round_bound"] = None if share is None else round_bound(share)
        row["round_ratio"] = ratio(costs[(c, "gmd")]["cpu_per_round"], costs[(c, "bgmd")]["cpu_per_round"])
    runs = []
    for (c, m), summary in zip(cells, summaries, strict=True):
        points = curves[c][m]
        target = ratios.get(c, {}).get("target")
        runs.append(
            {
                "corruption": c,
                "method": m,
                "rounds": int(summary.get("rounds", 0)),
                "final_acc": points[-1][1] if points else None,
                "r_target": None if target is None else rounds_to(records[(c, m)], target),
                "t_target": None if target is None else time_to(points, target),
                **{f"t_{level:g}": time_to(points, level) for level in LEVELS},
                **costs[(c, m)],
            }
        )
    levels = [f"speedup_{level:g}" for level in LEVELS]
    write_tables(
        [{"corruption": c, **r} for c, r in ratios.items()],
        [
            "corruption",
            "target",
            "t_gmd",
            "t_bgmd",
            "speedup",
            *levels,
            "round_ratio",
            "gmd_share",
            "round_bound",
        ],
        out / "speedup",
    )
    write_tables(
        runs,
        [
            "corruption",
            "method",
            "rounds",
            "final_acc",
            "r_target",
            "t_target",
            *(f"t_{level:g}" for level in LEVELS),
            "cpu_per_round",
            "wall_per_round",
            "aggregate_share",
        ],
        out / "runs",
    )
    plot(curves, out / "bgmd_speed.png", clock)
    return {"curves": curves, "speedup": ratios, "runs": runs}


def plot(curves: dict[str, dict[str, Points]], path: Path, clock: str = "cpu") -> Path:
    """One panel per corruption: test accuracy (%) against training seconds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _check_clock(clock)
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for ax, (corruption, by_method) in zip(axes[0], curves.items(), strict=True):
        for method, points in by_method.items():
            ax.plot([t for t, _ in points], [a for _, a in points], marker=".", label=method.upper())
        ax.set_title(corruption.replace("_", " ") + "%")
        ax.set_xlabel(CLOCK_LABELS[clock])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
