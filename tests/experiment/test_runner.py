import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from robustfl.experiment.config import ConfigError, load_config
from robustfl.experiment.rundir import RunDir
from robustfl.experiment.runner import run

SETTINGS = ["training.rounds=12", "training.lr=0.1", "training.eval_every=3", "training.checkpoint_every=4"]

TIMING = {"seconds", "wall_seconds", "cpu_seconds"}


def _stable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_run_directory_contents(tmp_path: Path, toy_build: Any) -> None:
    cfg = load_config(None, SETTINGS)
    summary = run(cfg, tmp_path / "r", quiet=True)
    rd = RunDir(tmp_path / "r")
    assert rd.config_path.exists() and rd.summary_path.exists()
    lines = rd.metrics_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["round"] for r in records] == [3, 6, 9, 12]
    for r in records:
        assert {
            "train_loss",
            "test_accuracy",
            "test_loss",
            "bits_up",
            "bits_down",
            "seconds",
            "wall_seconds",
            "cpu_seconds",
        } <= set(r)
    assert records[-1]["bits_up"] == 12 * 320
    assert records[0]["wall_seconds"] < records[-1]["wall_seconds"]
    assert 0.0 <= records[0]["cpu_seconds"] <= records[-1]["cpu_seconds"] == summary["cpu_seconds"]
    assert summary["rounds"] == 12 and summary["diverged"] is False
    assert summary["final"]["test_accuracy"] == records[-1]["test_accuracy"]
    assert [r for r, _ in rd.checkpoints()] == [8, 12]
    assert load_config(rd.config_path) == cfg


class Interrupt(Exception):
    pass


def test_resume_gives_identical_metrics(tmp_path: Path, toy_build: Any) -> None:
    cfg = load_config(None, SETTINGS)
    run(cfg, tmp_path / "full", quiet=True)

    def stopping_build(config: Any) -> Any:
        sim = toy_build(config)
        step = sim.step

        def step_then_stop() -> Any:
            if sim.round == 10:  # after the round-8 checkpoint and the round-9 metrics line
                raise Interrupt
            return step()

        sim.step = step_then_stop
        return sim

    with pytest.raises(Interrupt):
        run(cfg, tmp_path / "cut", quiet=True, build=stopping_build)
    assert [m["round"] for m in RunDir(tmp_path / "cut").read_metrics()] == [3, 6, 9]
    run(cfg, tmp_path / "cut", quiet=True, resume=True)
    full = RunDir(tmp_path / "full").read_metrics()
    resumed = RunDir(tmp_path / "cut").read_metrics()
    assert _stable(resumed) == _stable(full)


def test_resume_may_extend_rounds_but_not_change_config(tmp_path: Path, toy_build: Any) -> None:
    run(load_config(None, SETTINGS), tmp_path / "r", quiet=True)
    with pytest.raises(ConfigError, match=r"differs .* in: training\.lr"):
        run(load_config(None, [*SETTINGS, "training.lr=0.2"]), tmp_path / "r", quiet=True, resume=True)
    summary = run(
        load_config(None, [*SETTINGS, "training.rounds=15"]), tmp_path / "r", quiet=True, resume=True
    )
    assert summary["rounds"] == 15
    assert [m["round"] for m in RunDir(tmp_path / "r").read_metrics()] == [3, 6, 9, 12, 15]


def test_existing_run_needs_resume(tmp_path: Path, toy_build: Any) -> None:
    run(load_config(None, SETTINGS), tmp_path / "r", quiet=True)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(load_config(None, SETTINGS), tmp_path / "r", quiet=True)


def test_divergence_is_recorded_and_stops(tmp_path: Path, toy_build: Any) -> None:
    summary = run(load_config(None, [*SETTINGS, "training.lr=1e30"]), tmp_path / "r", quiet=True)
    assert summary["diverged"] is True and summary["rounds"] < 12
    last = RunDir(tmp_path / "r").read_metrics()[-1]
    assert last["train_loss"] is None and last["round"] == summary["rounds"]
    assert math.isfinite(json.loads(RunDir(tmp_path / "r").summary_path.read_text())["wall_seconds"])


def test_tensorboard_missing_is_a_clear_error(
    tmp_path: Path, toy_build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"--tensorboard needs the tensorboard package"):
        run(load_config(None, SETTINGS), tmp_path / "r", quiet=True, tensorboard=True)


def test_tensorboard_writes_events(tmp_path: Path, toy_build: Any) -> None:
    pytest.importorskip("tensorboard")
    run(load_config(None, SETTINGS), tmp_path / "r", quiet=True, tensorboard=True)
    assert any((tmp_path / "r" / "tensorboard").iterdir())
