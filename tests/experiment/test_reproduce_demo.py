import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robustfl.cli import app
from robustfl.experiment import bgmd_table2 as t2
from robustfl.experiment.config import ConfigError, load_config

runner = CliRunner()


def test_shipped_configs_match_the_generator() -> None:
    files = sorted(t2.config_dir().glob("*.toml"))
    assert len(files) == len(t2.METHODS) * len(t2.ALL_ROWS) == 64
    for path in files:
        method, corruption = path.stem.split("_", 1)
        assert tomllib.loads(path.read_text()) == t2.table2_config(method, corruption), path.name
        load_config(path)


def test_repository_configs_are_the_packaged_ones() -> None:
    repo_configs = Path(__file__).resolve().parents[2] / "configs"
    assert (repo_configs / "bgmd_table2" / "bgmd_clean.toml").read_text() == (
        t2.config_dir() / "bgmd_clean.toml"
    ).read_text()


def test_corruption_settings_follow_seed_000() -> None:
    assert t2.table2_config("sgd", "bitflip_20")["attack"] == {"name": "bit-flip", "params": {"scale": 100.0}}
    assert t2.table2_config("gmd", "additive_40")["workers"] == {"n": 10, "f": 4}
    assert t2.table2_config("bgmd", "clean")["aggregator"]["params"]["ratio"] == 0.1
    assert t2.table2_config("cmd", "backdoor_40")["data_attack"]["params"]["fraction"] == 1.0


def test_missing_rows_follow_seed_000() -> None:
    assert t2.table2_config("sgd", "bitflip_40")["workers"] == {"n": 10, "f": 4}
    feature = t2.table2_config("cmd", "feature_additive_20")["data_attack"]
    assert feature == {"name": "feature-noise", "params": {"fraction": 1.0, "mean": 100.0, "std": 1.0}}
    assert t2.table2_config("gmd", "impulse_40")["data_attack"]["name"] == "impulse"
    het = t2.table2_config("bgmd", "het_additive_40")
    assert het["data"]["partition"] == "dirichlet" and het["workers"]["f"] == 4
    assert set(t2.SEED_TABLE) == set(t2.ALL_ROWS)


def test_sample_reading_makes_one_row_per_sample_or_group() -> None:
    assert t2.reading_overrides("additive_40", "workers") == []
    assert t2.reading_overrides("additive_40", "samples") == [
        "workers.n=320",
        "workers.f=128",
        "training.batch_size=1",
    ]
    assert t2.reading_overrides("bitflip_20", "samples", group=4)[:2] == ["workers.n=80", "workers.f=16"]
    with pytest.raises(ConfigError, match="group must divide 320"):
        t2.reading_overrides("clean", "samples", group=7)
    with pytest.raises(ConfigError, match="unknown reading"):
        t2.reading_overrides("clean", "rows")
    assert t2.hetero_overrides(Path("/d"))[-1] == "model.name=resnet18"


def test_sample_reading_runs_per_sample_rows(tmp_path: Path, toy_build: Any) -> None:
    rows = t2.reproduce(
        tmp_path,
        methods=["cmd"],
        corruptions=["additive_20"],
        overrides=["training.rounds=2", "training.eval_every=1"],
        reading="samples",
        group=16,
    )
    assert 0 <= rows["additive_20"]["cmd_ours"] <= 100
    config = (tmp_path / "cmd_additive_20" / "seed0" / "config.toml").read_text()
    assert "n = 20" in config and "f = 4" in config and "batch_size = 16" in config


def test_shape_checks_on_a_hand_made_table() -> None:
    def row(**accs: float) -> dict[str, Any]:
        return {f"{m}_ours": a for m, a in accs.items()}

    rows = {
        "clean": row(sgd=90.0, bgmd=89.5),
        "bitflip_20": {**row(sgd=10.0), "sgd_diverged": 1},
        "additive_20": row(sgd=85.0),
        "additive_40": row(bgmd=80.0, gmd=82.0, cmd=70.0),
        "backdoor_40": row(bgmd=80.0, sgd=75.0),
    }
    checks = dict(t2.shape_checks(rows))
    assert checks["clean: BGMD within 1 point of SGD"] is True
    assert checks["bitflip_20: SGD diverges or collapses"] is True
    assert checks["additive_20: SGD diverges or collapses"] is False
    assert checks["additive_40: SGD diverges or collapses"] is None
    assert checks["additive_40: BGMD >= GMD - 1"] is False
    assert checks["additive_40: BGMD >> CMD (by 5+ points)"] is True
    assert checks["backdoor_40: BGMD > SGD"] is True


def test_reproduce_rows_and_tables(tmp_path: Path, toy_build: Any) -> None:
    rows = t2.reproduce(
        tmp_path,
        methods=["sgd", "bgmd"],
        corruptions=["clean", "backdoor_40"],
        overrides=["training.rounds=4"],
    )
    assert list(rows) == ["clean", "backdoor_40"]
    assert rows["backdoor_40"]["bgmd_seed"] == 84.69
    assert 0 < rows["clean"]["sgd_ours"] <= 100
    assert (tmp_path / "table2.md").read_text().count("\n") == 4
    assert (tmp_path / "bgmd_backdoor_40" / "seed0" / "summary.json").exists()
    with pytest.raises(ConfigError, match="unknown method krum"):
        t2.reproduce(tmp_path, methods=["krum"])


def test_reproduce_cli(tmp_path: Path, toy_build: Any) -> None:
    args = [
        "reproduce",
        "bgmd-table2",
        "--rounds",
        "3",
        "--method",
        "sgd",
        "--method",
        "bgmd",
        "--corruption",
        "clean",
        "--seed",
        "0",
        "--seed",
        "1",
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "(89.39)" in result.output and "(89.25)" in result.output and "±" in result.output
    assert "clean: BGMD within 1 point of SGD" in result.output
    result = runner.invoke(app, ["reproduce", "bgmd-table2", "--write-configs", str(tmp_path / "c")])
    assert result.exit_code == 0 and len(list((tmp_path / "c").glob("*.toml"))) == 64


def test_demo_cli(tmp_path: Path, toy_build: Any) -> None:
    result = runner.invoke(app, ["demo", "--rounds", "5", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "BGMD" in result.output and f"plot: {tmp_path / 'accuracy.png'}" in result.output
    assert (tmp_path / "accuracy.png").exists()
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 4


def test_reproduce_over_seeds(tmp_path: Path, toy_build: Any) -> None:
    rows = t2.reproduce(
        tmp_path, methods=["sgd"], corruptions=["clean"], seeds=[0, 1, 2], overrides=["training.rounds=3"]
    )
    row = rows["clean"]
    assert row["sgd_runs"] == 3 and row["sgd_diverged"] == 0
    assert row["sgd_std"] is not None and row["sgd_std"] > 0
    assert t2.cell_text(row, "sgd") == f"{row['sgd_ours']:.2f} ± {row['sgd_std']:.2f} (89.39)"
    assert sorted(p.name for p in (tmp_path / "sgd_clean").iterdir()) == ["seed0", "seed1", "seed2"]


def test_cell_text_divergence() -> None:
    assert t2.cell_text({"sgd_diverged": 2, "sgd_runs": 2, "sgd_seed": None}, "sgd") == "div (-)"
    row = {"cmd_ours": 50.0, "cmd_std": 1.0, "cmd_diverged": 1, "cmd_runs": 3, "cmd_seed": 84.2}
    assert t2.cell_text(row, "cmd") == "50.00 ± 1.00 (1 div) (84.20)"
