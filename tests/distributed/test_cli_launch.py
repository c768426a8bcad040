"""``robustfl launch`` argument checks and the torchrun command it builds (no processes)."""

from __future__ import annotations

from pathlib import Path

from launching import config
from typer.testing import CliRunner

from robustfl.cli import app
from robustfl.cli.launch import torchrun_command


def test_launch_refuses_too_few_or_too_many_processes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    runner = CliRunner()
    few = runner.invoke(app, ["launch", "--nproc", "1", str(cfg)])
    assert few.exit_code == 2 and "at least 2 processes" in few.output
    many = runner.invoke(app, ["launch", "--nproc", "9", str(cfg)])
    assert many.exit_code == 2 and "at most 7 processes" in many.output


def test_one_machine_uses_a_standalone_rendezvous(tmp_path: Path) -> None:
    cmd = torchrun_command(4, tmp_path / "c.toml", ["training.lr=0.1"], tmp_path / "out", resume=True)
    assert "--standalone" in cmd and "--nproc-per-node=4" in cmd
    assert cmd[cmd.index("--set") + 1] == "training.lr=0.1" and cmd[-1] == "--resume"


def test_several_machines_pass_the_rendezvous_flags(tmp_path: Path) -> None:
    cmd = torchrun_command(
        2,
        tmp_path / "c.toml",
        [],
        tmp_path / "out",
        nnodes=2,
        node_rank=1,
        master_addr="10.0.0.1",
        master_port=29400,
    )
    assert "--standalone" not in cmd
    assert {"--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=29400"} <= set(cmd)
