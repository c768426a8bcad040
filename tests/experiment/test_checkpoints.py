"""Checkpoints carry a SHA-256 digest, a bad newest one falls back to the previous one, their structure
and values are validated in one line, and killed writes leave nothing behind."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from test_runner import SETTINGS, Interrupt, _stable

from robustfl.experiment.config import load_config
from robustfl.experiment.rundir import CHECKPOINT_MAGIC, RunDir, atomic_write, read_checkpoint
from robustfl.experiment.runner import run


def _flip(path: Path, at: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= mask
    path.write_bytes(bytes(data))


def test_every_flipped_bit_is_detected(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    path = rd.save_checkpoint(3, {"x": torch.arange(50.0), "round": 3})
    size = path.stat().st_size
    gen = torch.Generator().manual_seed(0)
    for at in torch.randint(0, size, (10,), generator=gen).tolist():
        original = path.read_bytes()
        _flip(path, at, 1 << (at % 8))
        with pytest.raises(ValueError, match=r"corrupt|not a robustfl checkpoint"):
            read_checkpoint(path)
        path.write_bytes(original)
    assert torch.equal(read_checkpoint(path)["x"], torch.arange(50.0))


def test_a_bad_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, keep=3)
    for r in (2, 4, 6):
        rd.save_checkpoint(r, {"round": r})
    _flip(rd.checkpoints()[-1][1], -3)
    said: list[str] = []
    state = rd.load_checkpoint(on_skip=said.append)
    assert state["round"] == 4 and rd.loaded is not None and rd.loaded.name == "round_000004.pt"
    assert len(said) == 1 and "round_000006.pt" in said[0] and "digest mismatch" in said[0]
    assert "previous checkpoint round_000004.pt" in said[0]
    with pytest.raises(ValueError, match="digest mismatch"):  # asked for by name: no fallback
        rd.load_checkpoint(rd.checkpoints()[-1][1])


def test_no_verifying_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    for r in (1, 2):
        rd.save_checkpoint(r, {"round": r})
    (rd.checkpoint_dir / "round_000001.pt").write_bytes(b"")
    torch.save({"round": 2}, rd.checkpoint_dir / "round_000002.pt")  # a file without the digest header
    with pytest.raises(ValueError, match="no usable checkpoint") as err:
        rd.load_checkpoint()
    assert "\n" not in str(err.value) and "RFLCKPT1" in str(err.value)


def test_checkpoint_files_start_with_the_magic_and_digest(tmp_path: Path) -> None:
    path = RunDir(tmp_path).save_checkpoint(0, {"round": 0})
    import hashlib

    data = path.read_bytes()
    assert data.startswith(CHECKPOINT_MAGIC)
    head = len(CHECKPOINT_MAGIC)
    assert data[head : head + 32] == hashlib.sha256(data[head + 32 :]).digest()


def test_resume_after_a_corrupt_newest_checkpoint(
    tmp_path: Path, toy_build: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(None, SETTINGS)
    run(cfg, tmp_path / "full", quiet=True)

    def stopping_build(config: Any) -> Any:
        sim = toy_build(config)
        step = sim.step

        def step_then_stop() -> Any:
            if sim.round == 10:
                raise Interrupt
            return step()

        sim.step = step_then_stop
        return sim

    with pytest.raises(Interrupt):
        run(cfg, tmp_path / "cut", quiet=True, build=stopping_build)
    rd = RunDir(tmp_path / "cut")
    assert [r for r, _ in rd.checkpoints()] == [4, 8]
    _flip(rd.checkpoints()[-1][1], 100)
    run(cfg, tmp_path / "cut", quiet=True, resume=True)
    assert "round_000008.pt" in capsys.readouterr().err  # said so on stderr
    assert _stable(rd.read_metrics()) == _stable(RunDir(tmp_path / "full").read_metrics())


def _state_at(tmp_path: Path, toy_build: Any) -> tuple[Any, RunDir, dict[str, Any]]:
    cfg = load_config(None, SETTINGS)
    run(cfg, tmp_path / "r", quiet=True)
    rd = RunDir(tmp_path / "r")
    return cfg, rd, rd.load_checkpoint()


def test_a_checkpoint_written_before_cpu_seconds_resumes(tmp_path: Path, toy_build: Any) -> None:
    _, rd, state = _state_at(tmp_path, toy_build)
    state["loop"].pop("cpu_seconds")
    rd.save_checkpoint(12, state)
    run(load_config(None, [*SETTINGS, "training.rounds=15"]), tmp_path / "r", quiet=True, resume=True)
    assert rd.read_metrics()[-1]["round"] == 15 and rd.read_metrics()[-1]["cpu_seconds"] >= 0.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("loop"), r"keys \['loop', 'simulator'\]"),
        (lambda s: s.update(extra=1), r"keys \['loop', 'simulator'\]"),
        (lambda s: s["loop"].pop("bits_up"), "checkpoint 'loop' must have the keys"),
        (lambda s: s["loop"].update(bits_up=-4), r"loop\.bits_up must be an integer >= 0"),
        (lambda s: s["loop"].update(loss_count="7"), r"loop\.loss_count"),
        (lambda s: s["loop"].update(seconds={"x": "slow"}), r"loop\.seconds"),
        (lambda s: s["simulator"].pop("gen"), "does not fit this run's simulator"),
        (lambda s: s["simulator"].update(w=torch.zeros(3)), None),
        (lambda s: s["simulator"].update(round=-5), r"round -5 is outside \[0, training\.rounds = 12\]"),
        (lambda s: s["simulator"].update(round=10**9), r"round 1000000000 is outside"),
        (lambda s: s["simulator"].update(round=7), "named for round 12 but holds round 7"),
    ],
    ids=[
        "no-loop",
        "extra-key",
        "loop-missing",
        "negative-bits",
        "string-count",
        "bad-seconds",
        "sim-missing",
        "sim-shape",
        "round-negative",
        "round-huge",
        "round-mismatch",
    ],
)
def test_checkpoint_structure_and_values_are_validated_in_one_line(
    tmp_path: Path, toy_build: Any, edit: Any, message: str | None
) -> None:
    cfg, rd, state = _state_at(tmp_path, toy_build)
    edit(state)
    rd.save_checkpoint(12, state)
    if message is None:  # the toy simulator accepts any shape; the real one refuses it (engine tests)
        run(cfg, tmp_path / "r", quiet=True, resume=True)
        return
    with pytest.raises(ValueError, match=message) as err:
        run(cfg, tmp_path / "r", quiet=True, resume=True)
    assert "\n" not in str(err.value) and "round_000012.pt" in str(err.value)


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    rd.checkpoint_dir.mkdir(parents=True)
    stale = rd.checkpoint_dir / ".round_000004.pt.k3j2x.tmp"
    stale.write_bytes(b"half a checkpoint")
    rd.save_checkpoint(5, {"round": 5})
    assert sorted(p.name for p in rd.checkpoint_dir.iterdir()) == ["round_000005.pt"]
    stale.write_bytes(b"half a checkpoint")
    rd.load_checkpoint()
    assert not stale.exists()
    summary_tmp = tmp_path / ".summary.json.x8y9.tmp"
    summary_tmp.write_text("{")
    stale.write_bytes(b"half a checkpoint")
    rd.write_config({"name": "x"})  # every run and resume starts with this
    assert not summary_tmp.exists() and not stale.exists()


def test_a_failed_write_removes_its_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rd = RunDir(tmp_path)
    rd.save_checkpoint(1, {"round": 1})

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError):
        rd.save_checkpoint(2, {"round": 2})
    assert sorted(p.name for p in rd.checkpoint_dir.iterdir()) == ["round_000001.pt"]


@pytest.mark.skipif(sys.platform == "win32", reason="folders cannot be fsynced on Windows")
def test_the_folder_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic_write(tmp_path / "f.bin", lambda fh: fh.write(b"x"))
    assert synced == ["file", "dir"]


def test_checkpoint_flip_benchmark_detects_every_flip(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_flips", Path(__file__).resolve().parents[2] / "benchmarks" / "checkpoint_flips.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr("sys.argv", ["checkpoint_flips.py", "--quick"])
    bench.main()
    assert capsys.readouterr().out.splitlines()[-1] == "| 10 | 10 | 0 | 0 |"
