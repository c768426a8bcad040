"""Aggregator speed: every registered rule vs one pass over the input and vs its peers (ByzFL, ByzPy).

For each rule and each ``(n, d)`` (float32, ``threads`` intra-op threads) we report the time of a
call (the minimum over repeats after a warm-up; the median is kept in the JSON), that time in units
of ``x.sum(0)`` on the same tensor (one read of the input: the memory bandwidth floor), and, for each
peer library given as a source folder (``--byzfl PATH`` / ``$ROBUSTFL_BYZFL``, ``--byzpy PATH`` /
``$ROBUSTFL_BYZPY``), ``peer time / our time`` for the same rule on the same tensor. Rules are taken
from the registry, so a newly registered rule is benchmarked without editing this file;
``BENCH_PARAMS`` holds the few constructor arguments a rule needs beyond ``f``, and ``VARIANTS`` the
rules timed in several configurations (one row each, compared only with the peer computing the same
thing: CAF's exact default alone, its power-step estimates against the peer with as many steps).

Choices: ``f = n // 4``, lowered until the rule's bound on ``n`` holds (e.g. Bulyan's ``n >= 4f+3``);
a rule that refuses the size by design (MDA/SMEA's subset count at ``n = 64``) is reported as
"refused" and skipped for every library; cells with ``n * d`` above ``max_numel`` are reported as
"skipped" (memory and time). Stateful rules (centered clipping, BGMD) are timed in their steady
state (the memory persists across repeats). Peers whose pre-aggregators write into their input get
a fresh copy of ``x`` before each call (copy not timed); ByzPy takes a list of rows, so its time
includes ``x.unbind(0)`` (``n`` views, no copy). A peer call predicted (linearly in ``d`` from the
previous ``d``) to exceed ``peer_limit`` is not run: the smaller ``d``'s time is a lower bound there,
and the speed-up is printed as ``>=``.
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
from robustfl.bench.peers import PEERS, Peer, load_peers
from robustfl.utils import make_generator

BENCH_PARAMS: dict[str, dict[str, Any]] = {
    "BlockGeometricMedian": {"ratio": 0.1},
    "Bucketing": {"s": 2},
    "GeometricMedian": {"nu": 0.1, "T": 3, "tol": None, "init": "zero"},
}
"""Constructor arguments (besides ``f``) per rule class: BGMD at ``k = d/10``, buckets of 2, and the
geometric median at ByzFL's settings (``GeometricMedian.byzfl()``), so both libraries run the same
three Weiszfeld steps."""


@dataclass(frozen=True)
class Variant:
    """One benchmark row of a rule built with ``params`` (besides ``BENCH_PARAMS``), labelled ``label``,
    timed against the peers in ``peers`` only, each with a line saying what the ratio compares."""

    label: str
    params: dict[str, Any]
    peers: dict[str, str]

    @property
    def writes_input(self) -> bool:
        """Whether the rule may overwrite its input (then each timed call gets a fresh copy)."""
        return bool(self.params.get("in_place", False))


VARIANTS: dict[str, tuple[Variant, ...]] = {
    "CAF": (
        Variant("CAF (exact)", {}, {}),
        Variant("CAF (power_steps=1)", {"power_steps": 1}, {"ByzFL": "both one power step per round"}),
        Variant("CAF (power_steps=3)", {"power_steps": 3}, {"ByzPy": "both three power steps per round"}),
    ),
    **{
        rule: (
            Variant(rule, {}, {"ByzPy": "neither writes its input"}),
            Variant(
                f"{rule} (in_place)", {"in_place": True}, {"ByzFL": "both rescale the input's rows in place"}
            ),
        )
        for rule in ("ARC", "Clipping")
    },
}
"""Rules benchmarked as several configurations, each compared like with like: CAF's default (the exact
top eigenpair, which no peer computes) is timed alone; its power-step estimates are timed against
the peer with the same number of power steps per round (ours warm-started, theirs from a random
vector). ARC and Clipping return a new ``[n, d]`` by default, as ByzPy's do; with ``in_place=True``
they rescale the input's clipped rows where they are, as ByzFL's do, and are timed against ByzFL so."""

NOT_A_TARGET = {"Average": "both libraries call x.mean(0): the ratio is 1 by construction"}
"""Rules shown with their peer ratios but left out of the speed targets, with the reason."""

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}

TARGET_EACH = 1.2
TARGET_GEOMEAN = 3.0
TARGET_BGMD = 5.0
BGMD_TARGET_T = 500


@dataclass
class Settings:
    ns: tuple[int, ...] = (16, 64, 256, 1024)
    ds: tuple[int, ...] = (1_000, 10_000, 65_536, 1_000_000)
    max_numel: int = 1 << 25
    """Cells with ``n * d`` above this are skipped (the default, 2^25 = 128 MiB of float32, leaves
    out n = 1024 at d = 65,536 and n >= 64 at d = 10^6; raise it with ``--max-numel`` on a machine
    with the time and memory to spare)."""
    threads: int = 2
    min_time: float = 0.5
    min_repeats: int = 3
    max_repeats: int = 2000
    single_shot: float = 5.0
    clock: str = "wall"
    """``"wall"`` (``time.perf_counter``) or ``"cpu"`` (``time.process_time``: CPU seconds of every
    thread of the process). On a machine whose cores are shared by many jobs, wall time mostly
    measures when the scheduler ran us; CPU time leaves descheduled time out (for one-thread calls,
    as every call below 2^21 elements is here, it is the call's own work; a 2-thread call counts
    both threads' time, including time spent waiting at barriers)."""
    gm_iterations: tuple[int, ...] = (3, 20, 100, 500)
    """``T`` values at which BGMD (``k = d/10``) is compared with the full geometric median, both
    running exactly ``T`` Weiszfeld steps from 0 (no early stop). The 5x target is checked at
    ``T = 500``, the Weiszfeld budget of the seeds' RFA (seed 004 ch. 8), in the worst cell; the
    smaller ``T`` are reported for information: at ``T = 3`` full GM is about 7 passes over ``x``,
    while BGMD's Algorithm 2 alone needs the column norms of all of ``x`` (at least one pass plus a
    selection over ``d``), so no implementation of it can be 5x faster there."""
    gm_max_numel: int = 1 << 22
    """The BGMD-vs-GM comparison runs only on cells up to this size (T = 500 full GM steps are
    1,000 passes over ``x``)."""
    peer_limit: float = 30.0
    """A peer call whose time at the previous ``d`` (same rule and ``n``), scaled linearly to this
    ``d``, exceeds this many seconds is not run: its time here is bounded below by the smaller
    ``d``'s, and the speed-up is reported as ``>=``."""

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            ns=(8, 64),
            ds=(512,),
            min_time=0.01,
            min_repeats=1,
            max_repeats=2,
            peer_limit=5.0,
            gm_iterations=(3, BGMD_TARGET_T),
        )


@dataclass
class PeerTime:
    seconds: float
    seconds_median: float | None
    speedup: float
    lower_bound: bool = False


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
    peers: dict[str, PeerTime] = field(default_factory=dict)
    note: str = ""


def rule_classes(only: list[str] | None = None) -> list[type[Aggregator]]:
    """Every registered rule class once (aliases collapsed), sorted by class name; with ``only``, the
    ones those registry names denote (an unknown name raises the ``--rule`` error)."""
    seen: dict[str, type[Aggregator]] = {}
    for name in AGGREGATORS.names():
        factory = AGGREGATORS[name]
        if isinstance(factory, type) and issubclass(factory, Aggregator):
            seen.setdefault(factory.__name__, factory)
    classes = [seen[k] for k in sorted(seen)]
    if not only:
        return classes
    try:
        wanted = {AGGREGATORS[name] for name in only}
    except ValueError as err:
        raise ValueError(f"--rule: {err}") from None
    return [c for c in classes if c in wanted]


def build(
    cls: type[Aggregator], n: int, extra: dict[str, Any] | None = None
) -> tuple[Aggregator | None, str]:
    """Our rule for ``n`` rows with ``f = n // 4`` lowered to fit its bound (and the constructor
    arguments ``extra``, e.g. a ``Variant``'s); ``(None, why)`` if refused."""
    params = {**BENCH_PARAMS.get(cls.__name__, {}), **(extra or {})}
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
    clock = CLOCKS[settings.clock]

    def once(i: int) -> float:
        arg = x.clone() if copies[i] else x
        start = clock()
        fns[i](arg)
        return clock() - start

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


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def checks(
    rows: list[Row], peers: list[str], block: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The issue's targets, each as ``{name, value, target, ok}`` (``ok`` is None when not measurable):
    per peer, every rule's worst cell and the geometric mean over rules; BGMD vs full GM per ``T``."""
    out: list[dict[str, Any]] = []
    for peer in peers:
        per_rule: dict[str, list[float]] = {}
        for r in rows:
            if peer in r.peers and r.rule not in NOT_A_TARGET:
                per_rule.setdefault(r.rule, []).append(r.peers[peer].speedup)
        for rule, speedups in sorted(per_rule.items()):
            worst = min(speedups)
            like = _LIKE_FOR_LIKE.get((rule, peer))
            out.append(
                {
                    "name": f"{rule} vs {peer}{f' ({like})' if like else ''} (worst cell)",
                    "value": worst,
                    "target": TARGET_EACH,
                    "ok": worst >= TARGET_EACH,
                }
            )
        if per_rule:
            gm = _geomean([_geomean(v) for v in per_rule.values()])
            out.append(
                {
                    "name": f"geometric mean over rules vs {peer}",
                    "value": gm,
                    "target": TARGET_GEOMEAN,
                    "ok": gm >= TARGET_GEOMEAN,
                }
            )
    for T in sorted({b["T"] for b in block or []}):
        cells = [b for b in block or [] if b["T"] == T]
        cell = min(cells, key=lambda b: b["ratio"])
        checked = T == BGMD_TARGET_T
        out.append(
            {
                "name": f"BGMD (k = d/10) vs full GM, both exactly T={T} steps, worst cell n={cell['n']} d={cell['d']}"
                + ("" if checked else ", for information"),
                "value": cell["ratio"],
                "target": TARGET_BGMD if checked else None,
                "ok": cell["ratio"] >= TARGET_BGMD if checked else None,
            }
        )
    return out


_LIKE_FOR_LIKE = {(v.label, p): why for vs in VARIANTS.values() for v in vs for p, why in v.peers.items()}


def row_labels(cls: type[Aggregator]) -> list[str]:
    """The labels of ``cls``'s benchmark rows: its class name, or its ``VARIANTS``' labels."""
    return [v.label for v in VARIANTS.get(cls.__name__, ())] or [cls.__name__]


def _measure_all(
    settings: Settings, peers: list[Peer], only: list[str] | None, echo: Callable[[str], None]
) -> tuple[list[Row], list[dict[str, Any]]]:
    classes = rule_classes(only)
    rows: list[Row] = []
    block: list[dict[str, Any]] = []
    with_block = {"bgmd", "geometric-median"} <= set(AGGREGATORS.names()) and (
        not only or {AGGREGATORS["bgmd"], AGGREGATORS["geometric-median"]} <= set(classes)
    )
    previous: dict[tuple[str, str, int], tuple[float, int]] = {}
    header = f"{'rule':<22}{'n':>5}{'d':>9}{'f':>4}  {'ms':>10}  {'passes':>8}" + "".join(
        f"  {p.name + ' ms':>11}  {'speedup':>8}" for p in peers
    )
    echo(header)
    echo("-" * len(header))
    for d in sorted(settings.ds):
        for n in settings.ns:
            if n * d > settings.max_numel:
                for cls in classes:
                    for label in row_labels(cls):
                        rows.append(Row(label, n, d, "skipped", note=f"n*d = {n * d:,} above max_numel"))
                echo(
                    f"{'(all rules)':<22}{n:>5}{d:>9}    skipped: n*d = {n * d:,} above max_numel={settings.max_numel:,}"
                )
                continue
            x = torch.randn(n, d, generator=make_generator(0, "bench-aggregators", n, d))
            ((floor, _),) = timed([lambda t: t.sum(0)], x, settings)
            for cls in classes:
                for variant in VARIANTS.get(cls.__name__, (None,)):
                    rows.append(_measure_rule(cls, x, floor, peers, settings, previous, echo, variant))
            if with_block and n * d <= settings.gm_max_numel:
                block.extend(_block_vs_full(x, settings, echo))
            del x
    return rows, block


def _measure_rule(
    cls: type[Aggregator],
    x: Tensor,
    floor: float,
    peers: list[Peer],
    settings: Settings,
    previous: dict[tuple[str, str, int], tuple[float, int]],
    echo: Callable[[str], None],
    variant: Variant | None = None,
) -> Row:
    n, d = x.shape
    label = cls.__name__ if variant is None else variant.label
    rule, why = build(cls, n, None if variant is None else variant.params)
    if rule is None:
        echo(f"{label:<22}{n:>5}{d:>9}    {why[:70]}")
        return Row(label, n, d, why.split(":")[0], note=why)
    if isinstance(rule, ReferenceRule):
        rule.set_reference(x.mean(0))  # FLTrust: a server update (its cost is the rule's)
    params = rule.params()
    row = Row(label, n, d, "ok", f=params.get("f"), params={k: repr(v) for k, v in params.items()})
    fns: list[Callable[[Tensor], object]] = [rule]
    copies = [variant is not None and variant.writes_input]
    theirs: list[Peer] = []
    bounded: dict[str, float] = {}
    failed: dict[str, str] = {}
    for peer in peers:
        fn = peer.make(rule, n)
        if fn is None or (variant is not None and peer.name not in variant.peers):
            continue
        before = previous.get((peer.name, row.rule, n))
        if before is not None and before[0] == math.inf:
            row.note += f"{peer.name} not run: it failed at a smaller d. "
            continue
        if before is not None and before[0] * d / before[1] > settings.peer_limit:
            bounded[peer.name] = before[0]
            continue
        fns.append(_guarded(fn, peer.name, failed))
        copies.append(peer.writes_input)
        theirs.append(peer)
    results = timed(fns, x, settings, fresh_copy=copies)
    (ours, row.seconds_median), rest = results[0], results[1:]
    row.seconds, row.passes = ours, ours / floor
    for peer, (t, t_med) in zip(theirs, rest, strict=True):
        if peer.name in failed:
            row.note += f"{peer.name} failed: {failed[peer.name]}. "
            previous[(peer.name, row.rule, n)] = (math.inf, d)
            continue
        row.peers[peer.name] = PeerTime(t, t_med, t / ours)
        previous[(peer.name, row.rule, n)] = (t, d)
    for name, t in bounded.items():
        row.peers[name] = PeerTime(t, None, t / ours, lower_bound=True)
        row.note += f"{name} not run: it took {t:.1f} s at a smaller d, so it would exceed peer_limit here (a lower bound). "
    if variant is not None and not variant.peers:
        row.note += "no peer computes this configuration: timed alone. "
    cells = ""
    for peer in peers:
        pt = row.peers.get(peer.name)
        if pt is None:
            cells += f"  {'-':>11}  {'-':>8}"
        else:
            ge = ">=" if pt.lower_bound else ""
            cells += f"  {ge:>2}{pt.seconds * 1e3:>9.2f}  {ge:>2}{pt.speedup:>5.2f}x"
    f_col = "" if row.f is None else row.f
    echo(f"{row.rule:<22}{n:>5}{d:>9}{f_col:>4}  {ours * 1e3:>10.2f}  {row.passes:>8.1f}{cells}")
    return row


def _guarded(fn: Callable[[Tensor], object], name: str, failed: dict[str, str]) -> Callable[[Tensor], object]:
    """``fn`` that records a peer's exception (e.g. out of memory) in ``failed`` instead of raising, so
    one peer's failure costs its entry in this row, not the run."""

    def call(x: Tensor) -> object:
        if name in failed:
            return None
        try:
            return fn(x)
        except Exception as err:  # any failure of foreign code is reported, not raised
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
            return None

    return call


def _block_vs_full(x: Tensor, settings: Settings, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """GM and BGMD (``k = d/10``), both exactly ``T`` smoothed Weiszfeld steps from 0 with ``nu = 0.1``
    (no early stop), for each ``T`` in ``settings.gm_iterations``."""
    n, d = x.shape
    out = []
    for T in settings.gm_iterations:
        full = AGGREGATORS.get("geometric-median", nu=0.1, T=T, tol=None, init="zero")
        block = AGGREGATORS.get("bgmd", ratio=0.1, nu=0.1, T=T, tol=None)
        (gm, _), (bgmd, _) = timed([full, block], x, settings)
        out.append({"n": n, "d": d, "T": T, "gm_seconds": gm, "bgmd_seconds": bgmd, "ratio": gm / bgmd})
        echo(
            f"{'GM / BGMD, T=' + str(T):<22}{n:>5}{d:>9}      {gm * 1e3:>7.2f} / {bgmd * 1e3:.2f} ms = {gm / bgmd:.2f}x"
        )
    return out


def run(
    settings: Settings,
    byzfl_path: str | None = None,
    only: list[str] | None = None,
    echo: Callable[[str], None] = print,
    byzpy_path: str | None = None,
) -> dict[str, Any]:
    """Benchmark every registered rule (or those named in ``only``) and return the JSON-able report."""
    peers = load_peers({"ByzFL": byzfl_path, "ByzPy": byzpy_path})
    threads_before = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        rows, block = _measure_all(settings, peers, only, echo)
    finally:
        torch.set_num_threads(threads_before)
    names = [p.name for p in peers]
    results = checks(rows, names, block)
    echo("")
    for name, env in PEERS.items():
        if name not in names:
            echo(f"{name} not loaded (give --{name.lower()} PATH or set {env}): no ratios to {name}")
    echo(
        f"clock={settings.clock}, threads={settings.threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}"
    )
    for rule, why in NOT_A_TARGET.items():
        echo(f"not a target: {rule} ({why})")
    labels = {r.rule for r in rows}
    for v in (v for vs in VARIANTS.values() for v in vs if v.label in labels):
        echo(
            f"{v.label}: "
            + (
                ", ".join(f"vs {p}: {why}" for p, why in v.peers.items())
                or "no peer computes it, timed alone"
            )
        )
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
            "clock": settings.clock,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "settings": asdict(settings),
        "peers": {p.name: p.version for p in peers},
        "rows": [asdict(r) for r in rows],
        "bgmd_vs_gm": block,
        "checks": results,
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: one table per ``d`` (rules x ``n``; each cell our time, its passes over
    ``x``, and every peer's speed-up), then the BGMD-vs-GM ratios and the checks."""
    rows = report["rows"]
    peers = list(report["peers"])
    out: list[str] = []
    for d in sorted({r["d"] for r in rows}):
        ns = sorted({r["n"] for r in rows if r["d"] == d})
        out += [f"**d = {d:,}**", "", "| rule | " + " | ".join(f"n = {n}" for n in ns) + " |"]
        out.append("|---|" + "---|" * len(ns))
        for rule in sorted({r["rule"] for r in rows}):
            cells = []
            for n in ns:
                r = next((r for r in rows if r["rule"] == rule and r["n"] == n and r["d"] == d), None)
                if r is None or r["status"] != "ok":
                    cells.append("—" if r is None else r["status"])
                    continue
                text = f"{r['seconds'] * 1e3:.3g} ms ({r['passes']:.0f}×)"
                for p in peers:
                    pt = r["peers"].get(p)
                    if pt is not None:
                        text += f" · {p} {'≥' if pt['lower_bound'] else ''}{pt['speedup']:.2f}x"
                    elif f"{p} failed" in r["note"] or f"{p} not run" in r["note"]:
                        text += f" · {p} failed"
                cells.append(text)
            out.append(f"| {rule} | " + " | ".join(cells) + " |")
        out.append("")
    if report["bgmd_vs_gm"]:
        out += [
            "| GM / BGMD (k = d/10), both exactly T steps | n | d | T | GM ms | BGMD ms | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in report["bgmd_vs_gm"]:
            out.append(
                f"| | {b['n']} | {b['d']:,} | {b['T']} | {b['gm_seconds'] * 1e3:.3g} | {b['bgmd_seconds'] * 1e3:.3g} | {b['ratio']:.2f}x |"
            )
        out.append("")
    for c in report["checks"]:
        verdict = "info" if c["target"] is None else ("PASS" if c["ok"] else "MISS")
        target = "" if c["target"] is None else f" (target ≥ {c['target']}x)"
        out.append(f"- {verdict} {c['name']}: {c['value']:.2f}x{target}")
    return "\n".join(out) + "\n"


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
