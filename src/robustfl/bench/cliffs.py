"""Cliff scan: does every aggregator's time grow smoothly with ``n`` and ``d``?

Along two lines of sizes, (a) ``n`` fixed and ``d`` from 10^3 to 10^7 and (b) ``d`` fixed and ``n``
from 16 to 1,024, straddling the thresholds of the rules' size-switching code paths, we time one call
of every registered rule (process CPU clock, the minimum over repeats, one intra-op thread by default)
and report its cost per input element ``t / (n d)``. Dividing further by the rule's expected growth in
``n`` (``n^(e-1)`` with ``e`` from ``EXPONENTS``) gives a *normalised cost* that an implementation
without cliffs keeps flat or lowers (fixed per-call costs amortise); a rise by more than ``factor``
(default 2) from one point to the next is flagged as a cliff, once measuring it and the point before
it again (``confirm``: the minimum of all measurements, noise only adds time) has not removed it. A rule's peak extra memory per call is
measured in a fresh process (peak resident set during the call minus the resident set before it) and
reported in copies of the input; more than ``MAX_EXTRA_COPIES`` is flagged (issue 19 asks for at most
one extra copy).

The pure parts (``normalised``, ``find_cliffs``, ``fitted_exponent``, ``line_points``,
``predicted_seconds``) are separated from the measuring ones so that they can be tested without timing.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from robustfl.aggregators import Aggregator
from robustfl.aggregators.fltrust import ReferenceRule
from robustfl.bench.aggregators import Settings as TimingSettings
from robustfl.bench.aggregators import build, rule_classes, timed
from robustfl.utils import make_generator

EXPONENTS: dict[str, float | None] = {
    # O(n d): one or a few passes over the rows (means, norms, clipping, sign votes)
    "ARC": 1,
    "Average": 1,
    "BlockGeometricMedian": 1,  # column norms + T Weiszfeld steps on k = d/10 coordinates
    "Bucketing": 1,
    "CenteredClipping": 1,
    "Clipping": 1,
    "FLTrust": 1,  # cosine of each row with one reference
    "GeometricMedian": 1,  # T Weiszfeld steps, each O(n d)
    "MoNNA": 1,  # distances from one row, mean of its n - f nearest
    "NormDifferenceClipping": 1,
    "SignGuard": 1,  # norms and a 10 % coordinate sample; its clustering has no d
    "SignMajority": 1,
    "WeakDP": 1,
    # O(n d log n) sorts per coordinate, counted as O(n d): log n grows 2.5x from n = 16 to 1,024,
    # never 2x between neighbouring points of the scan
    "Median": 1,
    "TrimmedMean": 1,
    "Meamed": 1,
    # O(n^2 d): an n x n matrix of distances or cosines (or n means of n - f rows each)
    "Bulyan": 2,
    "CAF": 2,  # distances once; the filtering rounds work on n x n matrices only
    "ClippedClustering": 2,
    "FLAME": 2,
    "FoolsGold": 2,
    "Krum": 2,
    "MultiKrum": 2,
    "NNM": 2,
    # unsure: None = the slope of log t against log n fitted over the scanned n
    "DnC": None,  # an n x min(d, sub_dim) Gram per iteration plus O(n d): n^2 for d <~ sub_dim, n above
    "MDA": None,  # enumerates comb(n, f) subsets: refuses all but small n
    "SMEA": None,
}
"""Exponent ``e`` of ``n`` in each rule's expected time ``O(n^e d)`` (all rules are taken as linear in
``d``). A rule missing here, or with ``None``, uses the slope fitted on its own ``n`` line."""

THRESHOLDS: tuple[tuple[str, str, str], ...] = (
    ("robustfl.aggregators._small", "SMALL_NUMEL", "numel"),  # one intra-op thread below this n*d
    ("robustfl.aggregators.clipping", "DIRECT_NUMEL", "numel"),  # centered clipping: direct vs streamed
    ("robustfl.aggregators.caf", "LANCZOS_MIN_M", "n"),  # dense eigh below, Lanczos from here on
)
"""Size switches in the rules' code (module, constant, what it bounds): each scan line gets points
just below and just above each one. The column-block sizes (``coordinatewise.BLOCK_NUMEL``,
``monna.BLOCK_NUMEL``, ``_distances._BLOCK_NUMEL``) set block widths ``BLOCK // n``, which switch
behaviour only at ``n`` beyond 1,024, so they add no points. A constant that is gone is ignored."""

MAX_EXTRA_COPIES = 2.0
"""Peak extra memory of one call, in copies of the input, above which the memory check flags a rule."""

NEAR_MISS = 1.5
MAX_NEAR_MISSES = 10
"""The summary also lists the largest rises between ``NEAR_MISS`` and the cliff factor."""

DECADES_D = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)
LINE_N = (16, 32, 64, 100, 127, 128, 129, 200, 256, 384, 512, 768, 1024)


@dataclass
class Settings:
    n_fixed: int = 64
    ds: tuple[int, ...] = DECADES_D
    d_fixed: int = 100_000
    ns: tuple[int, ...] = LINE_N
    straddle: bool = True
    """Add the points around ``THRESHOLDS`` to both lines."""
    max_numel: int = 1 << 28
    """Cells with more elements are skipped (2^28 = 1 GiB of float32)."""
    max_seconds: float = 5.0
    """A call that takes longer is measured by that one call, recorded as over the cap, and the rule's
    larger points on that line are skipped; so is a point whose predicted time (the last measured time
    grown by ``n^e d``) is over the cap."""
    min_time: float = 0.3
    """CPU seconds spent per cell (at least ``min_repeats`` calls, at most ``max_repeats``)."""
    min_repeats: int = 3
    max_repeats: int = 20
    threads: int = 1
    factor: float = 2.0
    """A rise of the normalised cost by more than this from one point to the next is a cliff."""
    confirm: bool = True
    """Measure each cliff and the point before it again (``confirm``) before reporting it."""
    memory: bool = True
    """Probe peak memory (fresh process) at the largest measured point of each line, per rule."""

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            n_fixed=16,
            ds=(1_000, 3_000),
            d_fixed=1_000,
            ns=(8, 16),
            straddle=False,
            min_time=0.005,
            min_repeats=1,
            max_repeats=2,
            memory=False,
        )


@dataclass
class Cell:
    rule: str
    line: str
    """``"d"`` (``n`` fixed, ``d`` varies) or ``"n"`` (``d`` fixed, ``n`` varies)."""
    n: int
    d: int
    status: str
    """``ok``, ``over-time-cap`` (measured by one call), ``skipped`` (size, predicted time, a rule over
    the cap at a smaller point) or ``refused`` (the rule's bound on ``n``)."""
    seconds: float | None = None
    ns_per_element: float | None = None
    normalised: float | None = None
    """``ns_per_element / n^(e-1)``: flat for a rule that grows as expected."""
    rise: float | None = None
    """``normalised`` here over the previous measured point's on the same line."""
    cliff: bool = False
    floor_seconds: float | None = None
    """``x.sum(0)`` on the same input (one read of it: the memory-bandwidth floor)."""
    floor_rise: float | None = None
    """The floor's cost per element here over the previous measured point's: above 1 where the
    input has left a cache level, which every rule pays."""
    memory_bound: bool = False
    """A cliff that the floor shares: ``rise / max(floor_rise, 1)`` is within ``factor``."""
    remeasured: int = 0
    """Times the cell was measured again by ``confirm`` (its ``seconds`` is the minimum of all)."""
    note: str = ""


# ---------------------------------------------------------------------------------------------------
# pure logic


def straddling(thresholds: Iterable[tuple[str, int]], line: str, fixed: int, lo: int, hi: int) -> list[int]:
    """Points of a line (``line == "d"``: values of ``d`` at ``n = fixed``; ``"n"``: values of ``n``
    at ``d = fixed``) just below and just above each threshold ``(kind, value)``, within ``[lo, hi]``.

    An ``"n"`` threshold ``m`` (on the number of rows) gives ``m - 1, m, m + 1`` on the ``n`` line only;
    a ``"numel"`` threshold ``T`` (on ``n d``) gives the largest value with ``n d < T`` and the smallest
    with ``n d > T``, so both ``<`` and ``<=`` switches are straddled."""
    out: set[int] = set()
    for kind, value in thresholds:
        if kind == "n":
            if line == "n":
                out.update({value - 1, value, value + 1})
        elif kind == "numel":
            out.update({(value - 1) // fixed, value // fixed + 1})
        else:
            raise ValueError(f"threshold kind must be 'n' or 'numel', got {kind!r}")
    return sorted(v for v in out if lo <= v <= hi)


def code_thresholds() -> list[tuple[str, int]]:
    """``(kind, value)`` of every ``THRESHOLDS`` constant that the current code defines."""
    found = []
    for module, name, kind in THRESHOLDS:
        value = getattr(importlib.import_module(module), name, None)
        if isinstance(value, int):
            found.append((kind, value))
    return found


def line_points(
    settings: Settings, thresholds: Sequence[tuple[str, int]] = ()
) -> dict[str, list[tuple[int, int]]]:
    """``{"d": [(n, d), ...], "n": [(n, d), ...]}``, each sorted by the varying size, with the points
    around ``thresholds`` added when ``settings.straddle``."""
    ds, ns = set(settings.ds), set(settings.ns)
    if settings.straddle:
        ds.update(straddling(thresholds, "d", settings.n_fixed, min(ds), max(ds)))
        ns.update(straddling(thresholds, "n", settings.d_fixed, max(2, min(ns)), max(ns)))
    return {
        "d": [(settings.n_fixed, d) for d in sorted(ds)],
        "n": [(n, settings.d_fixed) for n in sorted(ns)],
    }


def growth(exponent: float, before: tuple[int, int], after: tuple[int, int]) -> float:
    """Expected time ratio ``(n2/n1)^e (d2/d1)`` between two points ``(n, d)``."""
    return (after[0] / before[0]) ** exponent * (after[1] / before[1])


def predicted_seconds(
    seconds: float, exponent: float, before: tuple[int, int], after: tuple[int, int]
) -> float:
    """The time at ``after`` if the rule grows as ``n^e d`` from ``seconds`` at ``before``."""
    return seconds * growth(exponent, before, after)


def fitted_exponent(ns: Sequence[int], seconds: Sequence[float]) -> float | None:
    """Least-squares slope of ``log t`` against ``log n`` (``None`` with fewer than two distinct ``n``)."""
    if len(set(ns)) < 2:
        return None
    xs = [math.log(n) for n in ns]
    ys = [math.log(t) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def normalised(seconds: float, n: int, d: int, exponent: float) -> float:
    """Nanoseconds per element divided by the expected growth per element, ``n^(e-1)``."""
    return seconds * 1e9 / (n * d) / n ** (exponent - 1)


def find_cliffs(costs: Sequence[float | None], factor: float) -> list[tuple[float | None, bool]]:
    """Per point, ``(rise, cliff)``: the normalised cost over the previous point's (``None`` for the
    first point and for unmeasured ones, which are passed over), and whether it exceeds ``factor``."""
    if factor <= 1:
        raise ValueError(f"factor must be above 1 (a rise by more than this is a cliff), got {factor}")
    out: list[tuple[float | None, bool]] = []
    previous: float | None = None
    for c in costs:
        if c is None:
            out.append((None, False))
            continue
        rise = None if previous is None else c / previous
        out.append((rise, rise is not None and rise > factor))
        previous = c
    return out


def exponent_for(rule: str, cells: Sequence[Cell]) -> tuple[float, str]:
    """The rule's exponent of ``n`` and where it comes from (``"table"`` or ``"fitted"``); the
    fitted slope uses the rule's measured cells on the ``n`` line, falling back to 1."""
    e = EXPONENTS.get(rule)
    if e is not None:
        return float(e), "table"
    ns: list[int] = []
    times: list[float] = []
    for c in cells:
        if c.line == "n" and c.status == "ok" and c.seconds:
            ns.append(c.n)
            times.append(c.seconds)
    slope = fitted_exponent(ns, times)
    return (1.0, "default (too few points to fit)") if slope is None else (slope, "fitted")


def annotate(cells: list[Cell], factor: float) -> dict[str, dict[str, Any]]:
    """Fill ``normalised``, ``rise`` and ``cliff`` of every measured cell, line by line and rule by
    rule; return each rule's exponent ``{rule: {"exponent", "source"}}``."""
    exponents: dict[str, dict[str, Any]] = {}
    for rule in sorted({c.rule for c in cells}):
        mine = [c for c in cells if c.rule == rule]
        e, source = exponent_for(rule, mine)
        exponents[rule] = {"exponent": e, "source": source}
        for line in ("d", "n"):
            series = sorted((c for c in mine if c.line == line), key=lambda c: (c.n, c.d))
            for c in series:
                measured = c.status in ("ok", "over-time-cap") and c.seconds is not None
                c.normalised = normalised(c.seconds, c.n, c.d, e) if measured and c.seconds else None
            previous: Cell | None = None
            for c, (rise, cliff) in zip(
                series, find_cliffs([c.normalised for c in series], factor), strict=True
            ):
                c.rise, c.cliff = rise, cliff
                c.floor_rise, c.memory_bound = None, False
                if c.normalised is None:
                    continue
                if previous is not None and c.floor_seconds and previous.floor_seconds:
                    c.floor_rise = (c.floor_seconds / (c.n * c.d)) / (
                        previous.floor_seconds / (previous.n * previous.d)
                    )
                if cliff and rise is not None and c.floor_rise is not None:
                    c.memory_bound = rise / max(c.floor_rise, 1.0) <= factor
                previous = c
    return exponents


# ---------------------------------------------------------------------------------------------------
# measuring


def _make(cls: type[Aggregator], x: torch.Tensor) -> tuple[Aggregator | None, str]:
    rule, why = build(cls, x.shape[0])
    if isinstance(rule, ReferenceRule):
        rule.set_reference(x.mean(0))  # FLTrust: a server update (its cost is the rule's)
    return rule, why


def _timing(settings: Settings) -> TimingSettings:
    return TimingSettings(
        min_time=settings.min_time,
        min_repeats=settings.min_repeats,
        max_repeats=settings.max_repeats,
        single_shot=settings.max_seconds,
        clock="cpu",
    )


def measure(
    settings: Settings, only: list[str] | None = None, echo: Callable[[str], None] = print
) -> list[Cell]:
    """Time every rule (or those in ``only``) at every point of both lines."""
    classes = rule_classes(only)
    points = line_points(settings, code_thresholds())
    timing = _timing(settings)
    cells: list[Cell] = []
    echo(f"{'line':<5}{'rule':<24}{'n':>6}{'d':>10}  {'ms':>10}  {'ns/elem':>9}")
    for line, pts in points.items():
        last: dict[str, tuple[float, tuple[int, int]] | None] = {c.__name__: None for c in classes}
        capped: set[str] = set()
        for n, d in pts:
            if n * d > settings.max_numel:
                for cls in classes:
                    cells.append(
                        Cell(
                            cls.__name__,
                            line,
                            n,
                            d,
                            "skipped",
                            note=f"n*d above max_numel={settings.max_numel:,}",
                        )
                    )
                continue
            x = torch.randn(n, d, generator=make_generator(0, "bench-cliffs", n, d))
            ((floor, _),) = timed([lambda t: t.sum(0)], x, timing)
            for cls in classes:
                cell = _measure_cell(cls, x, line, settings, timing, last, capped)
                cell.floor_seconds = floor
                cells.append(cell)
                shown = f"{cell.seconds * 1e3:>10.3f}  {cell.ns_per_element:>9.3f}" if cell.seconds else ""
                why = cell.note if cell.note.startswith(cell.status) else f"{cell.status}: {cell.note}"
                echo(f"{line:<5}{cell.rule:<24}{n:>6}{d:>10}  {shown or why[:80]}")
            del x
    return cells


def suspects(cells: Sequence[Cell]) -> list[Cell]:
    """Cells to measure again: each cliff measured in full (``ok``) and the point before it."""
    out: dict[int, Cell] = {}
    for rule, line in sorted({(c.rule, c.line) for c in cells}):
        series = sorted(
            (c for c in cells if (c.rule, c.line) == (rule, line) and c.normalised is not None),
            key=lambda c: (c.n, c.d),
        )
        for before, c in itertools.pairwise(series):
            if c.cliff:
                out.update({id(p): p for p in (before, c) if p.status == "ok"})
    return list(out.values())


def confirm(
    cells: list[Cell], settings: Settings, echo: Callable[[str], None] = print, rounds: int = 2
) -> dict[str, dict[str, Any]]:
    """Measure every cliff and the point before it again (``rounds`` times at most, each with 3x the
    time budget) and keep each cell's minimum: on a shared machine noise only adds time, so a cliff
    that one slow measurement made disappears, and one that survives is the code's. Returns
    ``annotate``'s exponents."""
    exponents = annotate(cells, settings.factor)
    timing = _timing(settings)
    timing.min_time, timing.min_repeats = 3 * settings.min_time, 2 * settings.min_repeats
    classes = {c.__name__: c for c in rule_classes()}
    for _ in range(rounds):
        todo = suspects(cells)
        if not todo:
            break
        echo(f"re-measuring {len(todo)} cells around {sum(c.cliff for c in todo)} cliffs")
        for n, d in sorted({(c.n, c.d) for c in todo}):
            x = torch.randn(n, d, generator=make_generator(0, "bench-cliffs", n, d))
            ((floor, _),) = timed([lambda t: t.sum(0)], x, timing)
            for c in (c for c in todo if (c.n, c.d) == (n, d)):
                rule, _ = _make(classes[c.rule], x)
                if rule is None or c.seconds is None:
                    continue
                ((seconds, _),) = timed([rule], x, timing)
                c.seconds = min(c.seconds, seconds)
                c.ns_per_element = c.seconds * 1e9 / (n * d)
                c.floor_seconds = floor if c.floor_seconds is None else min(c.floor_seconds, floor)
                c.remeasured += 1
            del x
        exponents = annotate(cells, settings.factor)
    return exponents


def _measure_cell(
    cls: type[Aggregator],
    x: torch.Tensor,
    line: str,
    settings: Settings,
    timing: TimingSettings,
    last: dict[str, tuple[float, tuple[int, int]] | None],
    capped: set[str],
) -> Cell:
    name = cls.__name__
    n, d = x.shape
    if name in capped:
        return Cell(name, line, n, d, "skipped", note="over the time cap at a smaller point")
    previous = last[name]
    if previous is not None:
        expected = EXPONENTS.get(name)
        guess = predicted_seconds(previous[0], 2.0 if expected is None else expected, previous[1], (n, d))
        if guess > settings.max_seconds:
            capped.add(name)
            return Cell(name, line, n, d, "skipped", note=f"predicted {guess:.1f} s, over max_seconds")
    rule, why = _make(cls, x)
    if rule is None:
        return Cell(name, line, n, d, why.split(":")[0], note=why)
    ((seconds, _),) = timed([rule], x, timing)
    cell = Cell(name, line, n, d, "ok", seconds=seconds, ns_per_element=seconds * 1e9 / (n * d))
    if seconds > settings.max_seconds:
        cell.status, cell.note = "over-time-cap", f"one call took {seconds:.1f} s > max_seconds"
        capped.add(name)
    last[name] = (seconds, (n, d))
    return cell


@dataclass
class Memory:
    rule: str
    line: str
    n: int
    d: int
    extra_bytes: int | None
    input_bytes: int
    copies: float | None
    flagged: bool
    method: str = ""
    note: str = ""


_PROBE = "from robustfl.bench.cliffs import probe_main; probe_main()"


def probe_main() -> None:
    """Entry of the memory probe process: ``argv = [rule, n, d, threads]``; prints one JSON line."""
    rule_name, n, d, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    cls = next(c for c in rule_classes() if c.__name__ == rule_name)
    x = torch.randn(n, d, generator=make_generator(0, "bench-cliffs", n, d))
    rule, why = _make(cls, x)
    if rule is None:
        print(json.dumps({"error": why}))
        return
    # a warm-up call of another instance on a small slice loads code pages and lazy imports, which
    # would otherwise count as the call's memory; it is kept small so that the allocator keeps
    # nothing the measured call could reuse
    spare, _ = _make(cls, x[:, : min(d, 256)].contiguous())
    if spare is not None:
        spare(x[:, : min(d, 256)].contiguous())
    method = "VmHWM after clear_refs"
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set to the current one
    except OSError:
        method = "ru_maxrss"
    before = _status_kib("VmRSS")
    rule(x)
    peak = _status_kib("VmHWM") if method.startswith("VmHWM") else _maxrss_kib()
    print(json.dumps({"extra_bytes": max(0, peak - before) * 1024, "method": method}))


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field_name}")


def _maxrss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def probe_memory(rule: str, line: str, n: int, d: int, threads: int, timeout: float) -> Memory:
    """Peak extra resident memory of one call of ``rule`` on a fresh ``[n, d]`` float32 input, in a
    fresh process (so no allocator cache from other calls hides or adds memory)."""
    input_bytes = n * d * 4
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, rule, str(n), str(d), str(threads)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Memory(rule, line, n, d, None, input_bytes, None, False, note=f"probe over {timeout:.0f} s")
    lines = done.stdout.strip().splitlines()
    result = (
        json.loads(lines[-1]) if done.returncode == 0 and lines else {"error": done.stderr.strip()[-200:]}
    )
    if "error" in result:
        return Memory(rule, line, n, d, None, input_bytes, None, False, note=str(result["error"]))
    extra = int(result["extra_bytes"])
    copies = extra / input_bytes
    return Memory(
        rule, line, n, d, extra, input_bytes, copies, copies > MAX_EXTRA_COPIES, method=result["method"]
    )


def memory_points(cells: Sequence[Cell]) -> list[tuple[str, str, int, int]]:
    """``(rule, line, n, d)``: each rule's largest point with status ``ok`` on each line."""
    best: dict[tuple[str, str], Cell] = {}
    for c in cells:
        if c.status == "ok":
            key = (c.rule, c.line)
            if key not in best or c.n * c.d > best[key].n * best[key].d:
                best[key] = c
    return [(c.rule, c.line, c.n, c.d) for _, c in sorted(best.items())]


@dataclass
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    thresholds: list[tuple[str, int]]
    exponents: dict[str, dict[str, Any]]
    cells: list[Cell] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)

    def cliffs(self) -> list[Cell]:
        return [c for c in self.cells if c.cliff]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cliffs"] = [asdict(c) for c in self.cliffs()]
        return out


def load(data: dict[str, Any], factor: float | None = None) -> Report:
    """A report from its JSON (``Report.to_json``), re-annotated with ``factor`` (default: its own),
    so that a finished scan can be rendered again or judged with another factor without measuring."""
    settings = dict(data["settings"])
    if factor is not None:
        settings["factor"] = factor
    cells = [Cell(**c) for c in data["cells"]]
    exponents = annotate(cells, settings["factor"])
    return Report(
        machine=data["machine"],
        settings=settings,
        thresholds=[(k, v) for k, v in data["thresholds"]],
        exponents=exponents,
        cells=cells,
        memory=[Memory(**m) for m in data["memory"]],
    )


def run(settings: Settings, only: list[str] | None = None, echo: Callable[[str], None] = print) -> Report:
    """Measure both lines, annotate cliffs, probe memory; echo a summary."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        cells = measure(settings, only, echo)
        exponents = confirm(cells, settings, echo) if settings.confirm else annotate(cells, settings.factor)
    finally:
        torch.set_num_threads(threads_before)
    memory = []
    if settings.memory:
        for rule, line, n, d in memory_points(cells):
            m = probe_memory(rule, line, n, d, settings.threads, timeout=60 + 4 * settings.max_seconds)
            memory.append(m)
            echo(
                f"memory {rule:<24}{n:>6}{d:>10}  "
                + (f"{m.copies:.2f} copies" if m.copies is not None else m.note)
            )
    report = Report(
        machine={
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "(unset)"),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        },
        settings=asdict(settings),
        thresholds=code_thresholds(),
        exponents=exponents,
        cells=cells,
        memory=memory,
    )
    echo("")
    for line in summary(report):
        echo(line)
    return report


def _describe(c: Cell, cells: Sequence[Cell]) -> str:
    before = [p for p in cells if p.rule == c.rule and p.line == c.line and p.normalised is not None]
    before = [p for p in before if (p.n, p.d) < (c.n, c.d)]
    prev = max(before, key=lambda p: (p.n, p.d)) if before else None
    where = f"n={c.n}" if c.line == "n" else f"d={c.d:,}"
    came = f" from {'n=' + str(prev.n) if c.line == 'n' else 'd=' + format(prev.d, ',')}" if prev else ""
    fixed = f"d={c.d:,}" if c.line == "n" else f"n={c.n}"
    floor = "" if c.floor_rise is None else f", floor x{c.floor_rise:.2f}"
    return f"{c.rule}: normalised cost x{c.rise:.2f} at {where}{came} ({fixed}; {c.ns_per_element:.3g} ns/elem{floor})"


def summary(report: Report) -> list[str]:
    """The cliffs and the memory flags, one line each."""
    out = [f"cliffs (normalised cost rising more than {report.settings['factor']}x between neighbours):"]
    cliffs = report.cliffs()
    out += [f"  {_describe(c, report.cells)}" for c in cliffs if not c.memory_bound] or ["  none"]
    shared = [c for c in cliffs if c.memory_bound]
    if shared:
        out.append(
            "cliffs the one-pass floor x.sum(0) shares (the input left a cache level; within the factor of it):"
        )
        out += [f"  {_describe(c, report.cells)}" for c in shared]
    factor = report.settings["factor"]
    near = [c for c in report.cells if c.rise is not None and NEAR_MISS <= c.rise <= factor]
    if near:
        out.append(
            f"largest rises from {NEAR_MISS}x up to the factor (not cliffs; at most {MAX_NEAR_MISSES}):"
        )
        near.sort(key=lambda c: -(c.rise or 0.0))
        out += [f"  {_describe(c, report.cells)}" for c in near[:MAX_NEAR_MISSES]]
    flagged = [m for m in report.memory if m.flagged]
    if report.memory:
        out.append(f"memory (more than {MAX_EXTRA_COPIES:g} extra copies of the input in one call):")
        out += [f"  {m.rule}: {m.copies:.2f} copies at n={m.n}, d={m.d:,}" for m in flagged] or ["  none"]
    return out


def markdown(report: Report) -> str:
    """One table per line (rules x points: ns per element, **CLIFF xr** where the normalised cost rose
    more than ``factor``), then the memory table and the summary."""
    out: list[str] = []
    for line, title in (
        ("d", f"n = {report.settings['n_fixed']}, d varies"),
        ("n", f"d = {report.settings['d_fixed']:,}, n varies"),
    ):
        mine = [c for c in report.cells if c.line == line]
        if not mine:
            continue
        pts = sorted({(c.n, c.d) for c in mine})
        label = [f"d={p[1]:,}" if line == "d" else f"n={p[0]}" for p in pts]
        out += [
            f"**{title}** (ns per input element; CLIFF: normalised cost up more than {report.settings['factor']}x"
            " from the previous point; cliff (floor too): so was the one-pass floor x.sum(0))",
            "",
        ]
        out += ["| rule | e | " + " | ".join(label) + " |", "|---|---|" + "---|" * len(pts)]
        for rule in sorted({c.rule for c in mine}):
            row = {(c.n, c.d): c for c in mine if c.rule == rule}
            texts = []
            for p in pts:
                c = row.get(p)
                if c is None:
                    texts.append("—")
                elif c.ns_per_element is None:
                    texts.append(c.status)
                else:
                    mark = ""
                    if c.cliff and c.rise:
                        mark = (
                            f" cliff x{c.rise:.1f} (floor too)"
                            if c.memory_bound
                            else f" **CLIFF x{c.rise:.1f}**"
                        )
                    cap = " (1 call, over cap)" if c.status == "over-time-cap" else ""
                    texts.append(f"{c.ns_per_element:.3g}{cap}{mark}")
            e = report.exponents[rule]
            out.append(
                f"| {rule} | {e['exponent']:.2g}{'' if e['source'] == 'table' else '*'} | "
                + " | ".join(texts)
                + " |"
            )
        out.append("")
    out.append(
        "`e`: exponent of n in the expected time O(n^e d); `*`: fitted on the n line (or 1 by default)."
    )
    out.append("")
    if report.memory:
        out += ["| rule | line | n | d | extra memory (copies of the input) |", "|---|---|---|---|---|"]
        for m in report.memory:
            text = (
                f"{m.copies:.2f}" + (f" **over {MAX_EXTRA_COPIES:g}**" if m.flagged else "")
                if m.copies is not None
                else m.note
            )
            out.append(f"| {m.rule} | {m.line} | {m.n} | {m.d:,} | {text} |")
        out.append("")
    out += summary(report)
    return "\n".join(out) + "\n"
