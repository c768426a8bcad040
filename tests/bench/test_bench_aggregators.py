import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robustfl.aggregators import AGGREGATORS
from robustfl.bench.aggregators import Row, Settings, build, checks, rule_classes, run
from robustfl.bench.byzfl_loader import find_package
from robustfl.cli import app


def test_quick_run_writes_valid_json(tmp_path: Path) -> None:
    out = tmp_path / "agg.json"
    result = CliRunner().invoke(
        app, ["bench", "aggregators", "--quick", "--json", str(out)], env={"ROBUSTFL_BYZFL": ""}
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["byzfl"] is False and report["checks"] == []) or report["byzfl"] is False
    rows = report["rows"]
    names = {c.__name__ for c in rule_classes()}
    assert {r["rule"] for r in rows} == names
    assert len(rows) == len(names) * len(Settings.quick().ns) * len(Settings.quick().ds)
    for r in rows:
        if r["status"] == "ok":
            assert r["seconds"] > 0 and r["passes"] > 0 and r["speedup"] is None
        else:
            assert r["status"] in {"refused", "skipped"} and r["note"]
    assert {(r["rule"], r["n"]) for r in rows if r["status"] == "refused"} >= {("MDA", 64), ("SMEA", 64)}
    assert "rule" in result.output and "passes" in result.output


def test_build_lowers_f_to_the_rules_bound_and_refuses_subset_blowup() -> None:
    rule, why = build(AGGREGATORS["meamed"], 16)
    assert rule is not None and rule.params()["f"] == 4 and why == ""
    rule, why = build(AGGREGATORS["smea"], 64)
    assert rule is None and why.startswith("refused: SMEA enumerates")


def test_checks_report_pass_and_miss() -> None:
    rows = [
        Row("Krum", 16, 10, "ok", seconds=1.0, speedup=4.0),
        Row("Krum", 64, 10, "ok", seconds=1.0, speedup=1.1),
        Row("NNM", 16, 10, "ok", seconds=1.0, speedup=9.0),
    ]
    by_name = {c["name"]: c for c in checks(rows, byzfl_loaded=True)}
    assert by_name["Krum vs ByzFL (worst case)"]["ok"] is False
    assert by_name["NNM vs ByzFL (worst case)"]["ok"] is True
    assert by_name["geometric mean over rules vs ByzFL"]["value"] == pytest.approx((4.4**0.5 * 9.0) ** 0.5)


def test_unknown_rule_and_bad_byzfl_path_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--rule: unknown aggregator 'nope'"):
        run(Settings.quick(), only=["nope"], echo=lambda _: None)
    with pytest.raises(ValueError, match="no byzfl/aggregators package found"):
        find_package(tmp_path)


def test_byzfl_side_by_side_when_a_checkout_is_present(tmp_path: Path) -> None:
    checkout = Path("/work/scratch/byzfl")
    if not (checkout / "src" / "byzfl" / "aggregators").is_dir():
        pytest.skip("no ByzFL checkout on this machine")
    settings = Settings(ns=(8,), ds=(64,), threads=3, min_time=0.0, max_repeats=1)
    before = torch.get_num_threads()
    report = run(settings, byzfl_path=str(checkout), only=["meamed", "nnm"], echo=lambda _: None)
    assert all(r["speedup"] > 0 for r in report["rows"])
    assert {c["name"] for c in report["checks"]} >= {
        "Meamed vs ByzFL (worst case)",
        "NNM vs ByzFL (worst case)",
    }
    assert torch.get_num_threads() == before
