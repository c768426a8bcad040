"""Aggregator speed: every registered rule vs one pass over the input and vs ByzFL's implementation.

For each rule and each ``(n, d)`` (float32, ``threads`` intra-op threads) we report the time of a
call (the minimum over repeats after a warm-up; the median is kept in the JSON), that time in units
of ``x.sum(0)`` on the same tensor (one read of the input: the memory bandwidth floor), and ``ByzFL time / our time`` for the same rule on the same tensor when a ByzFL
checkout is given (``--byzfl PATH`` or ``$ROBUSTFL_BYZFL``). Rules are taken from the registry, so a
newly registered rule is benchmarked without editing this file; ``BENCH_PARAMS`` holds the few
constructor arguments a rule needs beyond ``f``.

Choices: ``f = n // 4``, lowered until the rule's bound on ``n`` holds (e.g. Bulyan's ``n >= 4f+3``);
a rule that refuses the size by design (MDA/SMEA's subset count at ``n = 64``) is reported as
"refused" and skipped for both libraries. Stateful rules (centered clipping, BGMD) are timed in their
steady state for both libraries (the memory persists across repeats). ByzFL's pre-aggregators write
into their input, so ByzFL gets a fresh copy of ``x`` before each call (copy not timed). ByzFL calls
slower than ``byzfl_limit`` (its exhaustive SMEA) are not repeated at larger ``d``: the smaller ``d``'s
time is a lower bound there, and the speed-up is printed as ``>=``.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustfl.aggregators import AGGREGATORS, Aggregator
from robustfl.aggregators.fltrust import ReferenceRule
from robustfl.bench.byzfl_loader import load_byzfl_aggregators
from robustfl.utils import make_generator

BENCH_PARAMS: dict[str, dict[str, Any]] = {
    "BlockGeometricMedian": {"ratio": 0.1},
    "Bucketing": {"s": 2},
}
"""Constructor arguments (besides ``f``) per rule class: BGMD at ``k = d/10``, buckets of 2."""

BYZFL_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Average": ("Average", ()),
    "Median": ("Median", ()),
    "TrimmedMean": ("TrMean", ("f",)),
    "GeometricMedian": ("GeometricMedian", ("nu", "T")),
    "Krum": ("Krum", ("f",)),
    "MultiKrum": ("MultiKrum", ("f",)),
    "CenteredClipping": ("CenteredClipping", ("L", "tau")),
    "Clipping": ("Clipping", ("c",)),
    "MDA": ("MDA", ("f",)),
    "MoNNA": ("MoNNA", ("f", "idx")),
    "Meamed": ("Meamed", ("f",)),
    "CAF": ("CAF", ("f",)),
    "SMEA": ("SMEA", ("f",)),
    "NNM": ("NNM", ("f",)),
    "Bucketing": ("Bucketing", ("s",)),
    "ARC": ("ARC", ("f",)),
}
"""Our class name -> (ByzFL class name, the parameters passed on with the same meaning)."""

NOT_A_TARGET = {"Average": "both libraries call x.mean(0): the ratio is 1 by construction"}
"""Rules shown with their ByzFL ratio but left out of the speed targets, with the reason."""

TARGET_EACH = 1.2
TARGET_GEOMEAN = 3.0
TARGET_BGMD = 5.0
BGMD_TARGET_T = 500


@dataclass
class Settings:
    ns: tuple[int, ...] = (16, 64)
    ds: tuple[int, ...] = (10_000, 65_536)
    threads: int = 2
    min_time: float = 0.5
    min_repeats: int = 3
    max_repeats: int = 30
    single_shot: float = 5.0
    gm_iterations: tuple[int, ...] = (3, 20, 100, 500)
    """``T`` values at which BGMD (``k = d/10``) is compared with the full geometric median. The 5x
    target is checked at ``T = 500``, the Weiszfeld budget of the seeds' RFA (seed 004 ch. 8); the
    smaller ``T`` are reported for information: at ``T = 3`` full GM is about 7 passes over ``x``,
    while BGMD's Algorithm 2 alone needs the column norms of all of ``x`` (at least one pass plus a
    selection over ``d``), so no implementation of it can be 5x faster there."""
    byzfl_limit: float = 30.0
    """A ByzFL call slower than this (seconds) is not repeated at larger ``d`` for that rule and ``n``:
    its time there is bounded below by the smaller ``d``'s, and the speed-up is reported as ``>=``."""

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            ns=(8, 64),
            ds=(512,),
            min_time=0.01,
            min_repeats=1,
            max_repeats=2,
            byzfl_limit=5.0,
            gm_iterations=(3, BGMD_TARGET_T),
        )


@dataclass
class Row:
    rule: str
    n: int
    d: int
    status: str
    f: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    seconds_median: float | None = None
    passes: float | None = None
    byzfl_seconds: float | None = None
    byzfl_seconds_median: float | None = None
    byzfl_lower_bound: bool = False
    speedup: float | None = None
    note: str = ""


def rule_classes() -> list[type[Aggregator]]:
    """Every registered rule class once (aliases collapsed), sorted by class name."""
    seen: dict[str, type[Aggregator]] = {}
    for name in AGGREGATORS.names():
        factory = AGGREGATORS[name]
        if isinstance(factory, type) and issubclass(factory, Aggregator):
            seen.setdefault(factory.__name__, factory)
    return [seen[k] for k in sorted(seen)]


def build(cls: type[Aggregator], n: int) -> tuple[Aggregator | None, str]:
    """Our rule for ``n`` rows with ``f = n // 4`` lowered to fit its bound; ``(None, why)`` if refused."""
    params = dict(BENCH_PARAMS.get(cls.__name__, {}))
    takes_f = "f" in inspect.signature(cls).parameters
    last = ""
    for f in range(n // 4, -1, -1) if takes_f else [None]:
        kwargs = params if f is None else {**params, "f": f}
        try:
            rule = cls(**kwargs)
        except (TypeError, ValueError) as err:
            return None, f"skipped: cannot build with {kwargs}: {err}"
        try:
            rule.check_n(n)
        except ValueError as err:
            last = str(err)
            if "subsets" in last:
                return None, f"refused: {last}"
            continue
        return rule, ""
    return None, f"skipped: {last}"


def timed(
    fns: list[Callable[[Tensor], object]], x: Tensor, settings: Settings, fresh_copy: list[bool] | None = None
) -> list[tuple[float, float]]:
    """``(min, median)`` seconds of each ``fn(x)``, the functions called in turn (interleaved, so a
    change in the machine's load hits all of them alike) after one warm-up call each.

    Every function is measured at least ``min_repeats`` times and until ``min_time`` has been spent on
    it (at most ``max_repeats``); one whose warm-up took over ``single_shot`` seconds is measured by
    that call alone. The ratios use the minimum: on a shared machine the noise (other jobs, a
    descheduled OpenMP thread) only ever adds time, so the minimum is the most repeatable estimate.
    """
    copies = fresh_copy or [False] * len(fns)

    def once(i: int) -> float:
        arg = x.clone() if copies[i] else x
        start = time.perf_counter()
        fns[i](arg)
        return time.perf_counter() - start

    times: list[list[float]] = [[once(i)] for i in range(len(fns))]
    done = [t[0] > settings.single_shot for t in times]
    for t in times:
        if t[0] <= settings.single_shot:
            t.clear()  # the warm-up is not a measurement
    while not all(done):
        for i, t in enumerate(times):
            if done[i]:
                continue
            t.append(once(i))
            enough = len(t) >= settings.min_repeats and sum(t) >= settings.min_time
            done[i] = enough or len(t) >= settings.max_repeats
    return [(min(t), statistics.median(t)) for t in times]


def _byzfl_rule(byzfl: Any, ours: Aggregator) -> Any | None:
    entry = BYZFL_RULES.get(type(ours).__name__)
    if byzfl is None or entry is None:
        return None
    cls_name, names = entry
    params = ours.params()
    return getattr(byzfl, cls_name)(**{k: params[k] for k in names})


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def checks(
    rows: list[Row], byzfl_loaded: bool, block: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The issue's targets, each as ``{name, value, target, ok}`` (``ok`` is None when not measurable)."""
    out: list[dict[str, Any]] = []
    block = block or []
    if byzfl_loaded:
        per_rule: dict[str, list[float]] = {}
        for r in rows:
            if r.speedup is not None and r.rule not in NOT_A_TARGET:
                per_rule.setdefault(r.rule, []).append(r.speedup)
        for rule, speedups in sorted(per_rule.items()):
            worst = min(speedups)
            out.append(
                {
                    "name": f"{rule} vs ByzFL (worst case)",
                    "value": worst,
                    "target": TARGET_EACH,
                    "ok": worst >= TARGET_EACH,
                }
            )
        if per_rule:
            gm = _geomean([_geomean(v) for v in per_rule.values()])
            out.append(
                {
                    "name": "geometric mean over rules vs ByzFL",
                    "value": gm,
                    "target": TARGET_GEOMEAN,
                    "ok": gm >= TARGET_GEOMEAN,
                }
            )
    for T in sorted({b["T"] for b in block}):
        worst = min(b["ratio"] for b in block if b["T"] == T)
        checked = T == BGMD_TARGET_T
        out.append(
            {
                "name": f"BGMD (k = d/10) vs full GM, T={T} (worst case)"
                + ("" if checked else ", for information"),
                "value": worst,
                "target": TARGET_BGMD if checked else None,
                "ok": worst >= TARGET_BGMD if checked else None,
            }
        )
    return out


def _measure_all(
    settings: Settings, byzfl: Any, only: list[str] | None, echo: Callable[[str], None]
) -> tuple[list[Row], list[dict[str, Any]]]:
    classes = rule_classes()
    if only:
        try:
            wanted = {AGGREGATORS[name] for name in only}
        except ValueError as err:
            raise ValueError(f"--rule: {err}") from None
        classes = [c for c in classes if c in wanted]
    rows: list[Row] = []
    block: list[dict[str, Any]] = []
    with_block = {"bgmd", "geometric-median"} <= set(AGGREGATORS.names()) and (
        not only or {AGGREGATORS["bgmd"], AGGREGATORS["geometric-median"]} <= set(classes)
    )
    too_slow: dict[tuple[str, int], float] = {}
    header = (
        f"{'rule':<22}{'n':>4}{'d':>8}{'f':>4}  {'ms':>9}  {'passes':>8}  {'ByzFL ms':>10}  {'speedup':>8}"
    )
    echo(header)
    echo("-" * len(header))
    for d in sorted(settings.ds):
        for n in settings.ns:
            x = torch.randn(n, d, generator=make_generator(0, "bench-aggregators", n, d))
            ((floor, _),) = timed([lambda t: t.sum(0)], x, settings)
            for cls in classes:
                rule, why = build(cls, n)
                if isinstance(rule, ReferenceRule):
                    rule.set_reference(x.mean(0))  # FLTrust: a server update (its cost is the rule's)
                if rule is None:
                    rows.append(Row(cls.__name__, n, d, why.split(":")[0], note=why))
                    echo(f"{cls.__name__:<22}{n:>4}{d:>8}    {why[:70]}")
                    continue
                params = rule.params()
                row = Row(
                    cls.__name__,
                    n,
                    d,
                    "ok",
                    f=params.get("f"),
                    params={k: repr(v) for k, v in params.items()},
                )
                theirs = _byzfl_rule(byzfl, rule)
                slow = too_slow.get((row.rule, n))
                ref = f"{'-':>10}  {'-':>8}"
                if theirs is not None and slow is None:
                    (ours, row.seconds_median), (byz, row.byzfl_seconds_median) = timed(
                        [rule, theirs], x, settings, fresh_copy=[False, True]
                    )
                    if byz > settings.byzfl_limit:
                        too_slow[(row.rule, n)] = byz
                else:
                    ((ours, row.seconds_median),) = timed([rule], x, settings)
                    if theirs is not None and slow is not None:
                        byz, row.byzfl_lower_bound = slow, True
                        row.note = f"ByzFL not rerun: it took {slow:.0f} s at a smaller d (a lower bound)"
                row.seconds, row.passes = ours, ours / floor
                if theirs is not None:
                    row.byzfl_seconds, row.speedup = byz, byz / ours
                    ge = ">=" if row.byzfl_lower_bound else ""
                    ref = f"{ge:>2}{byz * 1e3:>8.2f}  {ge:>2}{row.speedup:>5.2f}x"
                rows.append(row)
                f_col = "" if row.f is None else row.f
                echo(f"{row.rule:<22}{n:>4}{d:>8}{f_col:>4}  {ours * 1e3:>9.2f}  {row.passes:>8.1f}  {ref}")
            if with_block:
                block.extend(_block_vs_full(x, settings, echo))
    return rows, block


def _block_vs_full(x: Tensor, settings: Settings, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """GM and BGMD (``k = d/10``) with the same ``T``, for each ``T`` in ``settings.gm_iterations``."""
    n, d = x.shape
    out = []
    for T in settings.gm_iterations:
        full = AGGREGATORS.get("geometric-median", T=T)
        block = AGGREGATORS.get("bgmd", ratio=0.1, T=T)
        (gm, _), (bgmd, _) = timed([full, block], x, settings)
        out.append({"n": n, "d": d, "T": T, "gm_seconds": gm, "bgmd_seconds": bgmd, "ratio": gm / bgmd})
        echo(
            f"{'GM / BGMD, T=' + str(T):<22}{n:>4}{d:>8}      {gm * 1e3:>7.2f} / {bgmd * 1e3:.2f} ms = {gm / bgmd:.2f}x"
        )
    return out


def run(
    settings: Settings,
    byzfl_path: str | None = None,
    only: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Benchmark every registered rule (or those named in ``only``) and return the JSON-able report."""
    byzfl = load_byzfl_aggregators(byzfl_path)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        rows, block = _measure_all(settings, byzfl, only, echo)
    finally:
        torch.set_num_threads(threads_before)
    results = checks(rows, byzfl is not None, block)
    echo("")
    if byzfl is None:
        echo("ByzFL not loaded (give --byzfl PATH or set ROBUSTFL_BYZFL): no ratios to ByzFL")
    echo(f"threads={settings.threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}")
    for rule, why in NOT_A_TARGET.items():
        echo(f"not a target: {rule} ({why})")
    for c in results:
        if c["target"] is None:
            echo(f"info  {c['name']}: {c['value']:.2f}x")
        else:
            echo(
                f"{'PASS' if c['ok'] else 'MISS'}  {c['name']}: {c['value']:.2f}x (target >= {c['target']}x)"
            )
    return {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": settings.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        },
        "settings": asdict(settings),
        "byzfl": byzfl is not None,
        "rows": [asdict(r) for r in rows],
        "bgmd_vs_gm": block,
        "checks": results,
    }


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
