"""A researcher's first day (issue 18) and the CLI's no-traceback promise (issue 11): runs, resume,
interrupts, divergence, sweeps, plots and output, driven through the CLI on the toy simulator."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from toy_sim import ToySim, ToyStats
from typer.testing import CliRunner

from robustfl.cli import app, main
from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.rundir import RunDir
from robustfl.experiment.runner import run

runner = CliRunner()
TIMING = {"seconds", "wall_seconds", "cpu_seconds"}


def _stable(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(path).read_metrics()]


def _interrupt_at(round_: int) -> type[ToySim]:
    class Interrupted(ToySim):
        def step(self) -> Any:
            if self.round == round_:
                raise KeyboardInterrupt
            return super().step()

    return Interrupted


class Diverging(ToySim):
    def step(self) -> ToyStats:
        stats = super().step()
        return ToyStats(float("nan") if self.round >= 4 else stats.loss, 320, 320)


# ---- interrupt and resume (issue 18 §2) ---------------------------------------------------------


def test_resume_with_out_alone_continues_a_run_with_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy_config_file: Path
) -> None:
    """The Ctrl-C message's command works although the run had --set overrides (stored config)."""
    overrides = ["-s", "training.lr=0.2", "-s", "training.checkpoint_every=2"]
    monkeypatch.setattr("robustfl.experiment.runner.default_build", _interrupt_at(5))
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", str(toy_config_file), "-q", "--out", str(out), *overrides])
    assert result.exit_code == 130
    assert f"round 4 is checkpointed. Continue with: robustfl run --resume --out {out}" in result.output
    monkeypatch.setattr("robustfl.experiment.runner.default_build", ToySim)
    result = runner.invoke(app, ["run", "--resume", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    whole = tmp_path / "whole"
    assert (
        runner.invoke(app, ["run", str(toy_config_file), "-q", "-o", str(whole), *overrides]).exit_code == 0
    )
    assert _stable(out) == _stable(whole)


def test_default_checkpoint_at_every_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without checkpoint_every, Ctrl-C after the first evaluation leaves a checkpoint to resume from."""
    monkeypatch.setattr("robustfl.experiment.runner.default_build", _interrupt_at(4))
    cfg = load_config(None, ["training.rounds=12", "training.eval_every=3"])
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "r", quiet=True)
    assert [r for r, _ in RunDir(tmp_path / "r").checkpoints()] == [3]


def test_interrupt_before_a_checkpoint_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy_config_file: Path
) -> None:
    monkeypatch.setattr("robustfl.experiment.runner.default_build", _interrupt_at(1))
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", str(toy_config_file), "-q", "--out", str(out)])
    assert result.exit_code == 130
    assert "before the first checkpoint" in result.output and "starts again from round 0" in result.output
    assert "continue from the last checkpoint" not in result.output


def test_resume_without_checkpoint_says_it_restarts(tmp_path: Path, toy_build: Any) -> None:
    cfg = load_config(None, ["training.rounds=6", "training.eval_every=3"])
    out = tmp_path / "r"
    out.mkdir()
    RunDir(out).write_config(cfg.to_dict())
    said: list[str] = []
    summary = run(cfg, out, resume=True, quiet=True, notify=said.append)
    assert summary["rounds"] == 6
    assert said == [f"{out} holds no checkpoint: starting again from round 0"]


def test_resume_of_nothing_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--resume", "--out", str(tmp_path / "none")])
    assert result.exit_code == 2 and "holds no run" in result.output


# ---- errors leave nothing behind, diverged runs say so (issue 11) --------------------------------


def test_build_error_leaves_no_run_directory(tmp_path: Path) -> None:
    def failing(config: Any) -> Any:
        raise ConfigError("config error: data.name: no such file")

    with pytest.raises(ConfigError):
        run(load_config(None), tmp_path / "r", quiet=True, build=failing)
    assert not (tmp_path / "r").exists()


def test_out_naming_a_file_is_one_line(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    file = tmp_path / "taken.txt"
    file.write_text("mine")
    result = runner.invoke(app, ["run", str(toy_config_file), "--out", str(file)])
    assert result.exit_code == 2 and "is a file" in result.output and "Traceback" not in result.output
    assert file.read_text() == "mine"


def test_diverged_run_exits_3_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy_config_file: Path
) -> None:
    monkeypatch.setattr("robustfl.experiment.runner.default_build", Diverging)
    result = runner.invoke(app, ["run", str(toy_config_file), "-q", "--out", str(tmp_path / "r")])
    assert result.exit_code == 3
    assert "diverged at round 4" in result.output


def test_unexpected_error_is_one_line_with_a_debug_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], toy_config_file: Path
) -> None:
    class Broken(ToySim):
        def step(self) -> Any:
            raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("robustfl.experiment.runner.default_build", Broken)
    monkeypatch.delenv("ROBUSTFL_DEBUG", raising=False)
    argv = ["robustfl", "run", str(toy_config_file), "-q", "--out", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: boom" in err and "--debug" in err
    monkeypatch.setattr(sys, "argv", [*argv[:1], "--debug", *argv[1:-1], str(tmp_path / "r2")])
    with pytest.raises(RuntimeError, match="boom"):
        main()
    os.environ.pop("ROBUSTFL_DEBUG", None)


# ---- threads and provenance (issue 18 §1, §6) -----------------------------------------------------


def test_threads_chosen_applied_and_recorded(
    tmp_path: Path, toy_build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        summary = run(load_config(None, ["training.rounds=3"]), tmp_path / "a", quiet=True)
        assert summary["threads"] == 1 and torch.get_num_threads() == 1
        summary = run(
            load_config(None, ["training.rounds=3", "training.threads=2"]), tmp_path / "b", quiet=True
        )
        assert summary["threads"] == 2
        summary = run(load_config(None, ["training.rounds=3"]), tmp_path / "c", quiet=True, threads=3)
        assert summary["threads"] == 3
    finally:
        torch.set_num_threads(before)
    (entry,) = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert entry["threads"] == 2 and entry["torch"] == torch.__version__ and entry["device"] == "cpu"
    assert {"robustfl", "git_commit", "host", "command", "python"} <= set(entry)


def test_run_files_are_readable_by_others(tmp_path: Path, toy_build: Any) -> None:
    old = os.umask(0o022)
    try:
        run(load_config(None, ["training.rounds=4", "training.eval_every=2"]), tmp_path / "r", quiet=True)
    finally:
        os.umask(old)
    rd = RunDir(tmp_path / "r")
    files = [rd.config_path, rd.summary_path, rd.metrics_path, *(p for _, p in rd.checkpoints())]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


# ---- sweeps (issue 18 §2, §6) ------------------------------------------------------------------------


def test_sweep_validates_every_point_before_the_first_run(tmp_path: Path, toy_config_file: Path) -> None:
    out = tmp_path / "s"
    grid = ["-g", "aggregator.name=median,medain"]
    result = runner.invoke(app, ["sweep", str(toy_config_file), *grid, "--out", str(out), "-q"])
    assert result.exit_code == 2
    assert "aggregator.name: unknown aggregator 'medain'" in result.output
    assert not out.exists()


def test_sweep_resume_skips_finished_and_resumes_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy_config_file: Path
) -> None:
    built: list[float] = []

    def counting(config: Any) -> ToySim:
        built.append(config.training.lr)
        return ToySim(config)

    monkeypatch.setattr("robustfl.experiment.runner.default_build", counting)
    out = tmp_path / "s"
    args = ["sweep", str(toy_config_file), "-g", "training.lr=0.05,0.1", "--out", str(out), "-q"]
    assert runner.invoke(app, args).exit_code == 0
    whole = (out / "sweep.csv").read_text()
    partial = out / "training.lr=0.1"
    (partial / "summary.json").unlink()
    RunDir(partial).truncate_metrics(4)
    for r, path in RunDir(partial).checkpoints():
        if r > 4:
            path.unlink()
    built.clear()
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--resume" in result.output
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    assert built == [0.1]
    assert _without_wall(out / "sweep.csv") == _without_wall_text(whole)


def _without_wall_text(text: str) -> list[list[str]]:
    rows = [line.split(",") for line in text.splitlines()]
    drop = rows[0].index("wall_seconds")
    return [r[:drop] + r[drop + 1 :] for r in rows]


def _without_wall(path: Path) -> list[list[str]]:
    return _without_wall_text(path.read_text())


def test_sweep_over_seeds_reports_mean_and_std(tmp_path: Path, toy_build: Any, toy_config_file: Path) -> None:
    out = tmp_path / "s"
    args = ["sweep", str(toy_config_file), "-g", "training.lr=0.05,0.1", "-g", "training.seed=0,1,2"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = (out / "sweep_seeds.csv").read_text().splitlines()
    assert lines[0].startswith("training.lr,seeds,test_accuracy") and len(lines) == 3
    assert all(",3," in line and " ± " in line for line in lines[1:])
    assert "mean ± std over seeds" in result.output


# ---- plots (issue 18 §5, §6) ----------------------------------------------------------------------


def test_plot_refuses_an_unknown_metric_and_reads_sweep_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy_config_file: Path
) -> None:
    monkeypatch.setattr("robustfl.experiment.runner.default_build", ToySim)
    out = tmp_path / "s"
    args = ["sweep", str(toy_config_file), "-g", "training.lr=0.05,0.1", "--out", str(out), "-q"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, ["plot", str(out), "--metric", "test_acuracy", "-o", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and "metrics present: " in result.output and "test_accuracy" in result.output
    assert not (tmp_path / "p.png").exists()
    png = tmp_path / "bits.png"
    result = runner.invoke(app, ["plot", str(out), "--x", "bits", "--x", "round", "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 1000
    result = runner.invoke(app, ["plot", str(out), "--x", "epochs"])
    assert result.exit_code == 2 and "choose from round, wall, bits" in result.output


def test_legend_labels_are_short_and_distinct() -> None:
    from robustfl.experiment.plots import short_labels

    names = [
        "demo[aggregator.name=median,training.lr=0.1]",
        "demo[aggregator.name=block-geometric-median,training.lr=0.1]",
    ]
    assert short_labels(names) == ["name=median", "name=block-geometric-median"]
    assert short_labels(["a", "a", "b"]) == ["a #1", "a #2", "b"]


# ---- output (issue 18 §6) ------------------------------------------------------------------------


def test_piped_tables_are_not_truncated() -> None:
    result = runner.invoke(app, ["list", "aggregators"])
    assert result.exit_code == 0
    assert "block-geometric-median" in result.output and "…" not in result.output


def test_version_flag_and_no_bool_metavar() -> None:
    from robustfl import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"robustfl {__version__}"
    help_text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "--resume" in help_text and "<bool>" not in help_text and "KEY=VALUE" in help_text


def test_packaged_config_by_name(tmp_path: Path) -> None:
    from robustfl.cli.run import packaged_configs, resolve_config

    assert resolve_config(Path("demo")).name == "demo.toml"
    assert "edge-case" in packaged_configs()
    with pytest.raises(ValueError, match="packaged: demo, edge-case"):
        resolve_config(Path("nope"))


def test_attack_matrix_writes_into_the_runs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    saved: list[Path] = []
    fake = SimpleNamespace(rules=["mean"], attacks=["alie"], notes={})
    monkeypatch.setattr("robustfl.experiment.attack_matrix.run_attack_matrix", lambda **kw: fake)
    monkeypatch.setattr("robustfl.experiment.attack_matrix.render_table", lambda result: "table")
    monkeypatch.setattr(
        "robustfl.experiment.attack_matrix.save_heatmap", lambda result, out: saved.append(out) or out
    )
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["attack-matrix", "--quick"]).exit_code == 0
    (path,) = saved
    assert path.parts[0] == "runs" and path.name == "attack_matrix.png" and "docs" not in path.parts


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_device_is_one_line_and_creates_nothing(tmp_path: Path, toy_config_file: Path) -> None:
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", str(toy_config_file), "-s", "training.device=cuda", "-o", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and "training.device" in result.output
    assert not out.exists()


def test_interrupted_sweep_says_how_to_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy_config_file: Path
) -> None:
    monkeypatch.setattr("robustfl.experiment.runner.default_build", _interrupt_at(5))
    out = tmp_path / "s"
    args = ["sweep", str(toy_config_file), "-g", "training.lr=0.05,0.1", "-s", "aggregator.params={}"]
    result = runner.invoke(app, [*args, "--out", str(out), "-q"])
    assert result.exit_code == 130
    assert f"-g training.lr=0.05,0.1 -s 'aggregator.params={{}}' --out {out} --resume" in result.output
    monkeypatch.setattr("robustfl.experiment.runner.default_build", ToySim)
    result = runner.invoke(app, [*args, "--out", str(out), "-q", "--resume"])
    assert result.exit_code == 0, result.output


def test_thread_choice_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from robustfl.experiment.threads import LARGE_MODEL, choose_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads(200_000, cores=16)[0] == 1
    assert choose_threads(LARGE_MODEL * 11, cores=16)[0] == 16
    assert choose_threads(LARGE_MODEL * 11, cores=16, concurrent=4)[0] == 4  # K workers share the cores
    assert choose_threads(LARGE_MODEL * 11, cores=2, concurrent=4)[0] == 1
    assert choose_threads(LARGE_MODEL * 11, cores=16, requested=3)[0] == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert choose_threads(200_000, cores=16) == (5, "OMP_NUM_THREADS")
    assert choose_threads(200_000, cores=16, requested=2)[0] == 2


def test_sweep_resume_with_another_config_fails_before_running(
    tmp_path: Path, toy_build: Any, toy_config_file: Path
) -> None:
    out = tmp_path / "s"
    args = ["sweep", str(toy_config_file), "-g", "training.lr=0.05,0.1", "--out", str(out), "-q"]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "sweep.csv").read_text()
    result = runner.invoke(app, [*args, "--resume", "-s", "training.batch_size=8"])
    assert result.exit_code == 2 and "differs" in result.output and "training.batch_size" in result.output
    assert (out / "sweep.csv").read_text() == before
