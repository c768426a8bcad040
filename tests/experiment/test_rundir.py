import json
from pathlib import Path

import pytest
import torch

from robustfl.experiment.rundir import RunDir, atomic_write, checkpoint_bytes


class NotATensor:
    pass


def test_atomic_write_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write(target, lambda fh: fh.write(b"abc"))
    assert target.read_bytes() == b"abc"
    with pytest.raises(RuntimeError):
        atomic_write(target, lambda fh: (_ for _ in ()).throw(RuntimeError("boom")))
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


def test_checkpoints_keep_newest(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, keep=2)
    for r in (2, 4, 6):
        rd.save_checkpoint(r, {"x": torch.full((3,), float(r)), "round": r})
    assert [r for r, _ in rd.checkpoints()] == [4, 6]
    state = rd.load_checkpoint()
    assert state["round"] == 6 and torch.equal(state["x"], torch.full((3,), 6.0))


def test_checkpoint_load_refuses_arbitrary_objects(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    rd.checkpoint_dir.mkdir()
    # a valid digest over a pickle of an arbitrary object: the digest passes, weights_only refuses
    (rd.checkpoint_dir / "round_000001.pt").write_bytes(checkpoint_bytes({"obj": NotATensor()}))
    with pytest.raises(ValueError, match="not a readable robustfl checkpoint"):
        rd.load_checkpoint()


def test_no_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no checkpoint"):
        RunDir(tmp_path).load_checkpoint()


def test_metrics_append_read_truncate(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    for r in (1, 2, 3):
        rd.append_metrics({"round": r, "test_accuracy": r / 10})
    with rd.metrics_path.open("a") as fh:
        fh.write('{"round": 4, "test_acc')  # a torn line from a crash
    assert [m["round"] for m in rd.read_metrics()] == [1, 2, 3]
    rd.truncate_metrics(2)
    lines = rd.metrics_path.read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [1, 2]


def test_config_and_summary(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    rd.write_config({"name": "x", "training": {"lr": 0.1}})
    assert 'name = "x"' in rd.config_path.read_text()
    with pytest.raises(ValueError, match="no summary"):
        rd.read_summary()
    rd.write_summary({"a": 1})
    assert rd.read_summary() == {"a": 1}
