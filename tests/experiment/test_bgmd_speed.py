"""`robustfl reproduce bgmd-speed`: time-to-accuracy, the speed-up, configs and the figure."""

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robustfl.cli import app
from robustfl.experiment import bgmd_speed as bs
from robustfl.experiment.config import ConfigError


def test_speedup_is_the_ratio_of_times_to_gmds_accuracy() -> None:
    gmd = [(10.0, 50.0), (30.0, 80.0), (60.0, 90.0)]
    bgmd = [(5.0, 60.0), (20.0, 89.5), (40.0, 91.0)]
    result = bs.speedup(gmd, bgmd)
    assert result == {"target": 89.0, "t_gmd": 60.0, "t_bgmd": 20.0, "speedup": 3.0}
    assert bs.speedup(gmd, [(5.0, 10.0)])["speedup"] is None  # never reached
    assert bs.time_to(gmd, 95.0) is None
    records = [{"round": 5, "test_accuracy": 0.6}, {"round": 8}, {"round": 10, "test_accuracy": 0.9}]
    assert bs.rounds_to(records, 89.0) == 10 and bs.rounds_to(records, 50.0) == 5
    assert bs.rounds_to(records, 95.0) is None


def test_curve_reads_cpu_seconds_or_wall_clock_without_evaluation() -> None:
    records = [
        {
            "round": 5,
            "wall_seconds": 12.0,
            "cpu_seconds": 3.0,
            "seconds": {"eval": 2.0},
            "test_accuracy": 0.5,
        },
        {"wall_seconds": 1.0},
    ]
    assert bs.curve(records) == [(3.0, 50.0)]
    assert bs.curve(records, "wall") == [(10.0, 50.0)]
    with pytest.raises(ConfigError, match="round 5 have no cpu_seconds.*--clock wall"):
        bs.curve([{k: v for k, v in records[0].items() if k != "cpu_seconds"}])
    with pytest.raises(ConfigError, match="unknown clock 'gpu'"):
        bs.curve(records, "gpu")


def test_compare_reads_the_speedup_at_gmds_accuracy_and_at_fixed_levels() -> None:
    gmd = [(10.0, 50.0), (30.0, 75.0), (60.0, 85.0)]
    bgmd = [(4.0, 72.0), (20.0, 84.5)]
    result = bs.compare({"gmd": gmd, "bgmd": bgmd}, levels=(70.0, 80.0, 90.0))
    assert result["speedup"] == 3.0  # 60 / 20 at 84%
    assert result["speedup_70"] == 30.0 / 4.0 and result["speedup_80"] == 3.0
    assert result["speedup_90"] is None


def test_the_aggregation_share_bounds_the_round_speedup() -> None:
    assert bs.round_bound(0.6) == pytest.approx(2.5) and bs.round_bound(0.0) == 1.0
    with pytest.raises(ValueError, match="share must be in"):
        bs.round_bound(1.0)
    summary = {
        "rounds": 10,
        "cpu_seconds": 5.0,
        "wall_seconds": 30.0,
        "seconds": {"compute": 6.0, "aggregate": 18.0, "eval": 4.0, "plan": 0.0},
    }
    assert bs.run_costs(summary) == {"cpu_per_round": 0.5, "wall_per_round": 2.6, "aggregate_share": 0.75}


def test_cells_read_gradients_per_group_with_an_accurate_gm() -> None:
    assert bs.cell_overrides("bgmd", "bitflip_20", 4) == [
        "workers.n=80",
        "workers.f=16",
        "training.batch_size=4",
        *bs.GM_ACCURATE,
    ]
    assert bs.cell_overrides("cmd", "impulse_20", 2)[:2] == ["workers.n=160", "workers.f=32"]


def test_reproduce_draws_the_figure_and_the_table(tmp_path: Path, toy_build: Any) -> None:
    result = bs.reproduce(
        tmp_path, corruptions=["bitflip_20"], methods=["gmd", "bgmd"], rounds=4, eval_every=2
    )
    assert set(result["curves"]["bitflip_20"]) == {"gmd", "bgmd"}
    assert len(result["curves"]["bitflip_20"]["gmd"]) == 2
    assert (tmp_path / "bgmd_speed.png").stat().st_size > 0 and (tmp_path / "speedup.md").exists()
    assert [r["method"] for r in result["runs"]] == ["gmd", "bgmd"] and (tmp_path / "runs.md").exists()
    assert result["speedup"]["bitflip_20"]["round_ratio"] is not None
    again = bs.reproduce(
        tmp_path, corruptions=["bitflip_20"], methods=["gmd", "bgmd"], rounds=4, eval_every=2, resume=True
    )
    assert again["curves"] == result["curves"]  # read back, not run again
    with pytest.raises(ConfigError, match="unknown method krum"):
        bs.reproduce(tmp_path / "x", methods=["krum"])


def test_cli(tmp_path: Path, toy_build: Any) -> None:
    args = ["reproduce", "bgmd-speed", "--corruption", "impulse_20", "--method", "gmd", "--method", "bgmd"]
    result = CliRunner().invoke(app, [*args, "--rounds", "2", "--eval-every", "1", "-q", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "impulse_20: BGMD reaches GMD's accuracy" in result.output and "(seed: 2.5-3x)" in result.output
