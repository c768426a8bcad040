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


def test_curve_leaves_out_evaluation_time() -> None:
    records = [{"wall_seconds": 12.0, "seconds": {"eval": 2.0}, "test_accuracy": 0.5}, {"wall_seconds": 1.0}]
    assert bs.curve(records) == [(10.0, 50.0)]


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
    with pytest.raises(ConfigError, match="unknown method krum"):
        bs.reproduce(tmp_path / "x", methods=["krum"])


def test_cli(tmp_path: Path, toy_build: Any) -> None:
    args = ["reproduce", "bgmd-speed", "--corruption", "impulse_20", "--method", "gmd", "--method", "bgmd"]
    result = CliRunner().invoke(app, [*args, "--rounds", "2", "--eval-every", "1", "-q", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "impulse_20: BGMD reaches GMD's accuracy" in result.output and "(seed: 2.5-3x)" in result.output
