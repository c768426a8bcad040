import csv
from pathlib import Path
from typing import Any

import pytest

from robustfl.experiment.config import ConfigError
from robustfl.experiment.plots import plot_runs
from robustfl.experiment.sweep import expand, parse_grid, point_dir, split_values, sweep


def test_split_values_respects_brackets() -> None:
    assert split_values("0.1, 0.05") == ["0.1", "0.05"]
    assert split_values("[1,2],[3]") == ["[1,2]", "[3]"]
    assert split_values("{f = 1, m = 2},'a,b'") == ["{f = 1, m = 2}", "'a,b'"]


def test_grid_expands_to_product() -> None:
    grid = parse_grid(["training.lr=0.1,0.2", "aggregator.name=mean,median,krum"])
    points = expand(grid)
    assert len(points) == 6
    assert points[0] == ["training.lr=0.1", "aggregator.name=mean"]
    assert point_dir(["a.b=[1, 2]"]) == "a.b=_1,_2_"


@pytest.mark.parametrize("bad", ["training.lr", "training.lr=", "=1,2", "training.lr=1,,2"])
def test_bad_grid_spec(bad: str) -> None:
    with pytest.raises(ConfigError, match="--grid"):
        parse_grid([bad])


def test_sweep_writes_one_row_per_point(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    rows = sweep(toy_config_file, ["training.lr=0.05,0.1", "training.seed=1,2"], tmp_path / "s")
    assert len(rows) == 4
    with (tmp_path / "s" / "sweep.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4
    assert [r["training.lr"] for r in table] == ["0.05", "0.05", "0.1", "0.1"]
    assert all(float(r["test_accuracy"]) > 0 for r in table)
    assert len({r["test_accuracy"] for r in table}) == 4
    assert (tmp_path / "s" / "sweep.md").read_text().count("\n") == 6
    assert all((Path(r["run_dir"]) / "summary.json").exists() for r in table)


def test_sweep_validates_every_point_first(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.lr"):
        sweep(toy_config_file, ["training.lr=0.1,-1"], tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_plot_writes_png(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    sweep(toy_config_file, ["training.lr=0.05,0.1"], tmp_path / "s")
    dirs = sorted(p for p in (tmp_path / "s").iterdir() if p.is_dir())
    out = plot_runs(dirs, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not a run directory"):
        plot_runs([tmp_path], tmp_path / "q.png")
