import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robustfl.aggregators import AGGREGATORS
from robustfl.bench.aggregators import (
    PeerTime,
    Row,
    Settings,
    build,
    checks,
    row_labels,
    rule_classes,
    run,
    timed,
)
from robustfl.bench.byzfl_loader import find_package
from robustfl.bench.peers import BYZPY_OMITTED
from robustfl.cli import app


def test_quick_run_writes_valid_json(tmp_path: Path) -> None:
    out = tmp_path / "agg.json"
    result = CliRunner().invoke(
        app,
        ["bench", "aggregators", "--quick", "--json", str(out)],
        env={"ROBUSTFL_BYZFL": "", "ROBUSTFL_BYZPY": ""},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["peers"] == {}
    rows = report["rows"]
    names = {label for c in rule_classes() for label in row_labels(c)}
    assert {r["rule"] for r in rows} == names
    assert len(rows) == len(names) * len(Settings.quick().ns) * len(Settings.quick().ds)
    for r in rows:
        if r["status"] == "ok":
            assert r["seconds"] > 0 and r["passes"] > 0 and r["peers"] == {}
        else:
            assert r["status"] in {"refused", "skipped"} and r["note"]
    assert {(r["rule"], r["n"]) for r in rows if r["status"] == "refused"} >= {("MDA", 64), ("SMEA", 64)}
    assert "rule" in result.output and "passes" in result.output
    block = report["bgmd_vs_gm"]
    quick = Settings.quick()
    assert {(b["n"], b["T"]) for b in block} == {(n, T) for n in quick.ns for T in quick.gm_iterations}
    assert all(b["ratio"] == pytest.approx(b["gm_seconds"] / b["bgmd_seconds"]) for b in block)
    worst = min((b for b in block if b["T"] == 500), key=lambda b: b["ratio"])
    name = f"BGMD (k = d/10) vs full GM, both exactly T=500 steps, worst cell n={worst['n']} d={worst['d']}"
    assert any(c["name"] == name for c in report["checks"])


def test_cells_above_max_numel_are_skipped_and_options_pick_the_grid(tmp_path: Path) -> None:
    out = tmp_path / "agg.json"
    args = ["bench", "aggregators", "--quick", "--rule", "median", "--n", "4", "--n", "300", "--d", "40"]
    result = CliRunner().invoke(
        app, [*args, "--max-numel", "1000", "--json", str(out)], env={"ROBUSTFL_BYZFL": ""}
    )
    assert result.exit_code == 0, result.output
    rows = {(r["n"], r["d"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[(4, 40)]["status"] == "ok"
    assert rows[(300, 40)]["status"] == "skipped" and "max_numel" in rows[(300, 40)]["note"]


def test_build_lowers_f_to_the_rules_bound_and_refuses_subset_blowup() -> None:
    rule, why = build(AGGREGATORS["meamed"], 16)
    assert rule is not None and rule.params()["f"] == 4 and why == ""
    rule, why = build(AGGREGATORS["smea"], 64)
    assert rule is None and why.startswith("refused: SMEA enumerates")


def peer(speedup: float) -> dict[str, PeerTime]:
    return {"ByzFL": PeerTime(speedup, None, speedup)}


def test_checks_report_pass_and_miss() -> None:
    rows = [
        Row("Krum", 16, 10, "ok", seconds=1.0, peers=peer(4.0)),
        Row("Krum", 64, 10, "ok", seconds=1.0, peers=peer(1.1)),
        Row("NNM", 16, 10, "ok", seconds=1.0, peers=peer(9.0)),
        Row("NNM", 64, 10, "ok", seconds=1.0, peers={"ByzPy": PeerTime(0.5, None, 0.5)}),
    ]
    block = [
        {"n": 16, "d": 10, "T": 3, "ratio": 2.0},
        {"n": 64, "d": 10, "T": 3, "ratio": 6.0},
        {"n": 16, "d": 10, "T": 500, "ratio": 7.0},
        {"n": 64, "d": 10, "T": 500, "ratio": 4.0},
    ]
    by_name = {c["name"]: c for c in checks(rows, ["ByzFL", "ByzPy"], block=block)}
    info = by_name[
        "BGMD (k = d/10) vs full GM, both exactly T=3 steps, worst cell n=16 d=10, for information"
    ]
    assert info["value"] == 2.0 and info["ok"] is None and info["target"] is None
    assert (
        by_name["BGMD (k = d/10) vs full GM, both exactly T=500 steps, worst cell n=64 d=10"]["ok"] is False
    )
    assert by_name["Krum vs ByzFL (worst cell)"]["ok"] is False
    assert by_name["NNM vs ByzFL (worst cell)"]["ok"] is True
    assert by_name["NNM vs ByzPy (worst cell)"]["ok"] is False
    assert by_name["geometric mean over rules vs ByzFL"]["value"] == pytest.approx((4.4**0.5 * 9.0) ** 0.5)


def test_unknown_rule_and_bad_byzfl_path_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--rule: unknown aggregator 'nope'"):
        run(Settings.quick(), only=["nope"], echo=lambda _: None)
    with pytest.raises(ValueError, match="no byzfl/aggregators package found"):
        find_package(tmp_path)


def peer_folder(name: str) -> str:
    path = os.environ.get(f"ROBUSTFL_{name.upper()}") or f"/work/scratch/{name}"
    try:
        find_package(path, name)
    except ValueError:
        pytest.skip(f"no {name} source folder on this machine")
    return path


def test_byzfl_side_by_side_when_a_checkout_is_present() -> None:
    checkout = peer_folder("byzfl")
    settings = Settings(ns=(8,), ds=(64,), threads=3, min_time=0.0, max_repeats=1)
    before = torch.get_num_threads()
    report = run(settings, byzfl_path=checkout, only=["meamed", "nnm"], echo=lambda _: None)
    assert all(r["peers"]["ByzFL"]["speedup"] > 0 for r in report["rows"])
    assert {c["name"] for c in report["checks"]} >= {
        "Meamed vs ByzFL (worst cell)",
        "NNM vs ByzFL (worst cell)",
    }
    assert torch.get_num_threads() == before


def test_byzpy_side_by_side_when_a_folder_is_present() -> None:
    folder = peer_folder("byzpy")
    settings = Settings(ns=(8,), ds=(64,), min_time=0.0, max_repeats=1)
    try:
        report = run(settings, byzpy_path=folder, only=["median", "nnm", "meamed"], echo=lambda _: None)
    except ValueError as err:
        pytest.skip(str(err))
    by_rule = {r["rule"]: r for r in report["rows"]}
    assert by_rule["Median"]["peers"]["ByzPy"]["speedup"] > 0
    assert by_rule["NNM"]["peers"]["ByzPy"]["speedup"] > 0
    assert "ByzPy" not in by_rule["Meamed"]["peers"] and "Meamed" in BYZPY_OMITTED


def test_timed_interleaves_and_respects_repeat_bounds() -> None:
    calls: list[str] = []
    settings = Settings(min_time=0.0, min_repeats=3, max_repeats=5, single_shot=1.0)
    x = torch.zeros(2, 2)
    results = timed([lambda t: calls.append("a"), lambda t: calls.append("b")], x, settings, [False, True])
    assert calls == ["a", "b"] * 4  # one warm-up each, then three interleaved rounds
    assert all(0 <= lo <= med for lo, med in results)


def test_average_is_shown_but_not_a_target() -> None:
    rows = [
        Row("Average", 16, 10, "ok", seconds=1.0, peers=peer(1.0)),
        Row("NNM", 16, 10, "ok", seconds=1.0, peers=peer(4.0)),
    ]
    names = {c["name"] for c in checks(rows, ["ByzFL"])}
    assert "Average vs ByzFL (worst cell)" not in names
    assert "NNM vs ByzFL (worst cell)" in names


def test_script_sets_passive_openmp_waiting(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "avg.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OMP_WAIT_POLICY", "ROBUSTFL_BYZFL", "ROBUSTFL_BYZPY"}
    }
    env["PYTHONPATH"] = str(root / "src")
    cmd = [
        sys.executable,
        str(root / "benchmarks" / "aggregators.py"),
        "--quick",
        "--rule",
        "mean",
        "--json",
        str(out),
    ]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=120)
    report = json.loads(out.read_text())
    assert report["machine"]["omp_wait_policy"] == "PASSIVE"
    assert {r["rule"] for r in report["rows"]} == {"Average"}


def test_slow_or_failing_peers_are_not_rerun_at_larger_d() -> None:
    import time as _time

    from robustfl.bench.aggregators import _measure_all
    from robustfl.bench.peers import Peer

    def slow(params: dict, n: int):  # type: ignore[no-untyped-def]
        return lambda x: _time.sleep(0.02)

    def broken(params: dict, n: int):  # type: ignore[no-untyped-def]
        def call(x: torch.Tensor) -> None:
            raise MemoryError("asked for 31 GB")

        return call

    peers = [Peer("Slow", "1", {"Median": slow}), Peer("Broken", "1", {"Median": broken})]
    settings = Settings(ns=(5,), ds=(10, 1000), min_time=0.0, min_repeats=1, max_repeats=1, peer_limit=0.5)
    rows, _ = _measure_all(settings, peers, ["median"], lambda _: None)
    small, large = sorted(rows, key=lambda r: r.d)
    assert not small.peers["Slow"].lower_bound and large.peers["Slow"].lower_bound
    assert "Broken failed: MemoryError: asked for 31 GB" in small.note
    assert "Broken" not in large.peers and "Broken not run" in large.note


def test_cpu_clock_counts_work_not_sleep() -> None:
    import time

    x = torch.zeros(2, 2)
    wall, cpu = Settings.quick(), Settings.quick()
    cpu.clock = "cpu"
    ((slept_wall, _),) = timed([lambda t: time.sleep(0.02)], x, wall)
    ((slept_cpu, _),) = timed([lambda t: time.sleep(0.02)], x, cpu)
    assert slept_wall >= 0.02 > 10 * slept_cpu


def test_clock_option_is_validated() -> None:
    result = CliRunner().invoke(app, ["bench", "aggregators", "--clock", "gpu"])
    assert result.exit_code != 0 and "--clock must be 'wall' or 'cpu'" in result.output


def test_caf_variants_are_compared_like_with_like() -> None:
    from robustfl.bench.aggregators import _measure_all
    from robustfl.bench.peers import Peer

    def peer_caf(params: dict, n: int):  # type: ignore[no-untyped-def]
        return lambda x: x.mean(0)

    peers = [Peer("ByzFL", "1", {"CAF": peer_caf}), Peer("ByzPy", "1", {"CAF": peer_caf})]
    settings = Settings(ns=(8,), ds=(10,), min_time=0.0, min_repeats=1, max_repeats=1)
    rows, _ = _measure_all(settings, peers, ["caf"], lambda _: None)
    by_label = {r.rule: r for r in rows}
    assert set(by_label) == {"CAF (exact)", "CAF (power_steps=1)", "CAF (power_steps=3)"}
    assert by_label["CAF (exact)"].peers == {} and "timed alone" in by_label["CAF (exact)"].note
    assert set(by_label["CAF (power_steps=1)"].peers) == {"ByzFL"}
    assert set(by_label["CAF (power_steps=3)"].peers) == {"ByzPy"}
    assert by_label["CAF (power_steps=3)"].params["power_steps"] == "3"
    names = [c["name"] for c in checks(rows, ["ByzFL", "ByzPy"])]
    assert "CAF (power_steps=1) vs ByzFL (both one power step per round) (worst cell)" in names
    assert not any(name.startswith("CAF (exact)") for name in names)
