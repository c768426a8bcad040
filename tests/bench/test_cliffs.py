"""Pure logic of the cliff scan (``robustfl.bench.cliffs``): no timing is asserted."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from robustfl.aggregators import MDA, Average, Krum, Median
from robustfl.bench import cliffs
from robustfl.bench.aggregators import rule_classes
from robustfl.bench.cliffs import (
    EXPONENTS,
    Cell,
    Report,
    Settings,
    annotate,
    find_cliffs,
    fitted_exponent,
    line_points,
    markdown,
    memory_points,
    normalised,
    predicted_seconds,
    straddling,
    summary,
    suspects,
)


def test_find_cliffs_flags_only_rises_above_the_factor() -> None:
    costs = [10.0, 5.0, 5.5, 12.0, None, 11.0, 30.0]
    out = find_cliffs(costs, factor=2.0)
    assert [c for _, c in out] == [False, False, False, True, False, False, True]
    assert out[0][0] is None and out[4][0] is None
    assert out[3][0] == pytest.approx(12.0 / 5.5)
    assert out[5][0] == pytest.approx(11.0 / 12.0)  # an unmeasured point is passed over
    with pytest.raises(ValueError, match="factor"):
        find_cliffs(costs, factor=1.0)


@given(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=20))
def test_a_non_increasing_series_has_no_cliff(values: list[float]) -> None:
    assert not any(c for _, c in find_cliffs(sorted(values, reverse=True), factor=2.0))


def test_normalisation_by_exponent_makes_expected_growth_flat() -> None:
    # a perfectly O(n^2 d) rule: time = 3e-9 n^2 d
    ns = [16, 64, 128, 129, 1024]
    costs = [normalised(3e-9 * n * n * 1000, n, 1000, 2.0) for n in ns]
    assert costs == pytest.approx([3.0] * len(ns))
    # judged as O(n d), the same rule rises by n: from 129 to 1024 that is a cliff
    linear = [normalised(3e-9 * n * n * 1000, n, 1000, 1.0) for n in ns]
    assert find_cliffs(linear, 2.0)[-1] == (pytest.approx(1024 / 129), True)
    assert predicted_seconds(2.0, 2.0, (64, 1000), (128, 3000)) == pytest.approx(2.0 * 4 * 3)


def test_fitted_exponent_recovers_the_slope() -> None:
    ns = [16, 32, 64, 256]
    assert fitted_exponent(ns, [5e-7 * n**1.5 for n in ns]) == pytest.approx(1.5)
    assert fitted_exponent([64, 64], [1.0, 2.0]) is None


def test_straddling_points_bracket_each_threshold() -> None:
    t = [("numel", 1 << 21), ("n", 128)]
    d_line = straddling(t, "d", 64, 1000, 10**7)
    assert d_line == [32767, 32769]
    assert 64 * 32767 < 1 << 21 < 64 * 32769
    assert straddling(t, "n", 100_000, 16, 1024) == [20, 21, 127, 128, 129]
    assert straddling(t, "n", 100_000, 64, 1024) == [127, 128, 129]  # out of range: dropped
    with pytest.raises(ValueError, match="kind"):
        straddling([("rows", 3)], "n", 10, 1, 100)


def test_line_points_adds_the_straddles_to_the_default_lines() -> None:
    pts = line_points(Settings(), [("numel", 1 << 16), ("n", 128)])
    assert pts["d"][0] == (64, 1000) and pts["d"][-1] == (64, 10**7)
    assert (64, 1023) in pts["d"] and (64, 1025) in pts["d"]
    assert [n for n, _ in pts["n"]][:3] == [16, 32, 64] and all(d == 100_000 for _, d in pts["n"])
    assert line_points(Settings(straddle=False), [("numel", 1 << 16)])["d"] == [
        (64, d) for d in cliffs.DECADES_D
    ]


def test_code_thresholds_finds_the_current_constants() -> None:
    found = cliffs.code_thresholds()
    assert found and all(kind in ("n", "numel") and value > 0 for kind, value in found)


def test_every_registered_rule_has_an_exponent_entry() -> None:
    # a new rule falls back to the fitted slope, but the table should say what is expected of it
    assert {c.__name__ for c in rule_classes()} <= set(EXPONENTS)


def _series(rule: str, line: str, points: list[tuple[int, int]], seconds: list[float | None]) -> list[Cell]:
    out = []
    for (n, d), t in zip(points, seconds, strict=True):
        if t is None:
            out.append(Cell(rule, line, n, d, "skipped", note="n*d above max_numel"))
        else:
            out.append(Cell(rule, line, n, d, "ok", seconds=t, ns_per_element=t * 1e9 / (n * d)))
    return out


def test_annotate_and_report_mark_a_cliff_and_its_place() -> None:
    n_pts = [(n, 10_000) for n in (64, 128, 129, 256)]
    d_pts = [(64, d) for d in (1000, 10_000, 100_000)]
    cells = _series("Median", "n", n_pts, [64e-5, 128e-5, 129e-5 * 3, 256e-5 * 3])
    cells += _series("Median", "d", d_pts, [64e-6, 64e-5, None])
    cells += _series("Krum", "n", n_pts, [64**2 * 1e-7, 128**2 * 1e-7, 129**2 * 1e-7, 256**2 * 1e-7])
    cells += [Cell("MDA", "n", 64, 10_000, "refused", note="refused: too many subsets")]
    exponents = annotate(cells, factor=2.0)
    assert exponents["Median"] == {"exponent": 1.0, "source": "table"}
    assert exponents["MDA"]["source"].startswith("default")
    flagged = [(c.rule, c.line, c.n) for c in cells if c.cliff]
    assert flagged == [("Median", "n", 129)]  # Krum grows as n^2: as expected, no cliff
    report = Report({}, {"factor": 2.0, "n_fixed": 64, "d_fixed": 10_000}, [], exponents, cells)
    lines = summary(report)
    assert any("Median" in line and "n=129" in line and "from n=128" in line for line in lines)
    table = markdown(report)
    assert "**CLIFF x3.0**" in table and "| MDA |" in table and "refused" in table
    assert not any(c.memory_bound for c in cells)
    assert memory_points(cells) == [
        ("Krum", "n", 256, 10_000),
        ("Median", "d", 64, 10_000),
        ("Median", "n", 256, 10_000),
    ]


def test_measure_skips_by_size_by_refusal_and_by_time_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The skipping decisions, with the clock replaced (no real timing): Average takes 1 s per
    million elements, Krum 10 s below n = 8 and 1,000 s from n = 8 on; the cap is 5 s."""

    def fake_timed(fns: list[object], x: torch.Tensor, settings: object) -> list[tuple[float, float]]:
        per_element = 1e-6 if not isinstance(fns[0], Krum) else (1e-5 if x.shape[0] < 8 else 1e-3)
        t = x.numel() * per_element
        return [(t, t)]

    monkeypatch.setattr(cliffs, "timed", fake_timed)
    monkeypatch.setattr(cliffs, "rule_classes", lambda only=None: [Average, Krum, MDA])
    settings = Settings(
        n_fixed=4, ds=(100_000, 400_000, 450_000, 4_000_000), d_fixed=1000, ns=(4, 8, 16, 64), straddle=False
    )
    settings.max_numel = 2_000_000
    cells = cliffs.measure(settings, echo=lambda _: None)
    status = {(c.rule, c.line, c.n, c.d): (c.status, c.note) for c in cells}
    assert status[("Average", "d", 4, 400_000)][0] == "ok"
    assert status[("Krum", "d", 4, 100_000)][0] == "ok"  # 4 s
    assert status[("Krum", "d", 4, 400_000)] == ("skipped", "predicted 16.0 s, over max_seconds")
    assert status[("Krum", "d", 4, 450_000)] == ("skipped", "over the time cap at a smaller point")
    assert status[("Average", "d", 4, 4_000_000)][0] == "skipped"  # 16e6 elements > max_numel
    assert "max_numel" in status[("Average", "d", 4, 4_000_000)][1]
    assert status[("Krum", "n", 4, 1000)][0] == "ok"
    krum8 = next(c for c in cells if (c.rule, c.line, c.n) == ("Krum", "n", 8))
    assert krum8.status == "over-time-cap" and krum8.seconds == pytest.approx(8.0)
    assert status[("Krum", "n", 16, 1000)][0] == "skipped"
    assert status[("MDA", "n", 64, 1000)][0] == "refused" and "subsets" in status[("MDA", "n", 64, 1000)][1]
    assert status[("Average", "n", 64, 1000)][0] == "ok"
    annotate(cells, 2.0)
    assert krum8.cliff  # the over-cap call still counts as a measurement


def test_a_cliff_the_one_pass_floor_shares_is_told_apart() -> None:
    """Per element, Average and the floor x.sum(0) both get 4x dearer from d = 10^5 to 10^6 (the
    input left the cache); Median gets 9x dearer: beyond the floor's 4x by more than the factor."""
    pts = [(64, 10**5), (64, 10**6)]
    floor = [64e-5 * 0.1, 64e-4 * 0.4]
    cells = _series("Average", "d", pts, [64e-5 * 0.1, 64e-4 * 0.4])
    cells += _series("Median", "d", pts, [64e-5, 64e-4 * 9])
    for c in cells:
        c.floor_seconds = floor[pts.index((c.n, c.d))]
    annotate(cells, factor=2.0)
    average, median = cells[1], cells[3]
    assert average.cliff and average.memory_bound and average.floor_rise == pytest.approx(4.0)
    assert median.cliff and not median.memory_bound
    report = Report({}, {"factor": 2.0, "n_fixed": 64, "d_fixed": 10_000}, [], {}, cells)
    text = "\n".join(summary(report))
    assert text.index("Median") < text.index("floor x.sum(0) shares") < text.index("Average")
    # the JSON round trip re-annotates: a stricter factor leaves only Median's cliff
    data = json.loads(json.dumps(report.to_json()))
    again = cliffs.load(data, factor=5.0)
    assert [(c.rule, c.n, c.d) for c in again.cliffs()] == [("Median", 64, 10**6)]
    assert [(c.rule, c.d) for c in cliffs.load(data).cliffs()] == [("Average", 10**6), ("Median", 10**6)]


def test_confirm_removes_a_noisy_cliff_and_keeps_a_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake clock: Average costs 1 ns per element, but its first measurement at n = 32 was slowed 3x
    by noise; Median really gets 3x dearer per element from n = 32 on. Measuring the suspects again
    keeps each cell's minimum: Average's cliff goes, Median's stays."""
    calls: dict[tuple[str, int], int] = {}

    def fake_timed(fns: list[object], x: torch.Tensor, settings: object) -> list[tuple[float, float]]:
        name = type(fns[0]).__name__
        key = (name, x.shape[0])
        calls[key] = calls.get(key, 0) + 1
        per_element = 1e-9
        if name == "Average" and x.shape[0] == 32 and calls[key] == 1:
            per_element *= 3
        if name == "Median" and x.shape[0] >= 32:
            per_element *= 3
        t = x.numel() * per_element
        return [(t, t)]

    monkeypatch.setattr(cliffs, "timed", fake_timed)
    monkeypatch.setattr(cliffs, "rule_classes", lambda only=None: [Average, Median])
    settings = Settings(n_fixed=4, ds=(100,), d_fixed=100, ns=(8, 16, 32, 64), straddle=False)
    cells = cliffs.measure(settings, echo=lambda _: None)
    annotate(cells, 2.0)
    assert {(c.rule, c.n) for c in cells if c.cliff} == {("Average", 32), ("Median", 32)}
    assert {(c.rule, c.n) for c in suspects(cells)} == {
        ("Average", 16),
        ("Average", 32),
        ("Median", 16),
        ("Median", 32),
    }
    cliffs.confirm(cells, settings, echo=lambda _: None)
    assert {(c.rule, c.n) for c in cells if c.cliff} == {("Median", 32)}
    assert all(c.remeasured >= 1 for c in cells if c.n in (16, 32) and c.line == "n")
