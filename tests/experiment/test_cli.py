import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from robustfl.cli import app

runner = CliRunner()


def test_run_quiet_prints_run_dir(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    out = tmp_path / "r"
    result = runner.invoke(
        app, ["run", str(toy_config_file), "--quiet", "--out", str(out), "--set", "training.rounds=6"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    assert json.loads((out / "summary.json").read_text())["rounds"] == 6


def test_run_table_and_resume(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", str(toy_config_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "test_accuracy" in result.output and f"run directory: {out}" in result.output
    args = ["run", str(toy_config_file), "-q", "--out", str(out), "--resume", "-s", "training.rounds=15"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["rounds"] == 15


def test_run_config_error_is_one_message(tmp_path: Path, toy_config_file: Path) -> None:
    result = runner.invoke(
        app, ["run", str(toy_config_file), "--set", "training.lr=-1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "config error: training.lr: Input should be greater than 0 (got -1)" in result.output
    assert "Traceback" not in result.output


def test_resume_needs_out(toy_config_file: Path) -> None:
    result = runner.invoke(app, ["run", str(toy_config_file), "--resume"])
    assert result.exit_code == 2 and "--resume needs --out" in result.output


def test_config_schema_markdown() -> None:
    result = runner.invoke(app, ["config-schema", "--markdown"])
    assert result.exit_code == 0
    assert "| training.lr | float | 0.05 |" in result.output
    assert "str \\| None" in result.output


def test_sweep_and_plot_commands(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    out = tmp_path / "s"
    result = runner.invoke(
        app, ["sweep", str(toy_config_file), "-g", "training.lr=0.05,0.1", "--out", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("sweep.csv")
    runs = sorted(str(p) for p in out.iterdir() if p.is_dir())
    result = runner.invoke(app, ["plot", *runs, "--out", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.png").exists()
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_interrupt_tells_how_to_resume(tmp_path: Path, monkeypatch: Any, toy_config_file: Path) -> None:
    from toy_sim import ToySim

    class Interrupted(ToySim):
        def step(self) -> Any:
            if self.round == 5:
                raise KeyboardInterrupt
            return super().step()

    monkeypatch.setattr("robustfl.experiment.runner.default_build", Interrupted)
    result = runner.invoke(app, ["run", str(toy_config_file), "-q", "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    assert "--resume" in result.output
    assert (tmp_path / "r" / "checkpoints" / "round_000004.pt").exists()


def test_default_out_never_reuses_a_folder(tmp_path: Path, monkeypatch: Any) -> None:
    from robustfl.cli.run import default_out

    monkeypatch.chdir(tmp_path)
    first = default_out("x")
    first.mkdir(parents=True)
    second = default_out("x")
    assert second != first and second.name.startswith(first.name)
