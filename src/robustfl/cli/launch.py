"""``robustfl launch --nproc P CONFIG``: the same run over P processes through torchrun."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli.app import app
from robustfl.cli.run import SetOption, default_out


def torchrun_command(
    nproc: int,
    config: Path,
    sets: list[str],
    out: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int = 29500,
) -> list[str]:
    """The torchrun command line that starts the ranks (``--standalone`` on one machine)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1 and master_addr is None:
        cmd.append("--standalone")
    else:
        cmd += [
            f"--nnodes={nnodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={master_addr or '127.0.0.1'}",
            f"--master-port={master_port}",
        ]
    cmd += ["-m", "robustfl.distributed", str(config.resolve()), "--out", str(out.resolve())]
    for s in sets:
        cmd += ["--set", s]
    return cmd + (["--resume"] if resume else []) + (["--quiet"] if quiet else [])


GRACE_SECONDS = 30.0
"""How long the ranks may take to exit after the server wrote the summary (a hung worker would
otherwise keep torchrun, and this command, waiting)."""


def _wait(proc: subprocess.Popen[bytes], summary: Path) -> int:
    """torchrun's exit status; once the server has finished, stragglers get ``GRACE_SECONDS``."""
    started, finished_at = time.time(), None
    while (code := proc.poll()) is None:
        time.sleep(0.5)
        if finished_at is None and summary.exists() and summary.stat().st_mtime >= started:
            finished_at = time.monotonic()
        if finished_at is not None and time.monotonic() - finished_at > GRACE_SECONDS:
            typer.secho("robustfl launch: the run is done; stopping workers that did not exit", err=True)
            proc.terminate()
            proc.wait()
            return 0
    return code


def _refuse_decentralised(cfg: Any) -> None:
    """Gossip has no server: the launch's server/worker runtime cannot run it."""
    from robustfl.algorithms import ALGORITHMS
    from robustfl.experiment.build import algorithm_component

    component, path = algorithm_component(cfg)
    if getattr(ALGORITHMS[component.name], "decentralised", False):
        raise ValueError(
            f"{path}: {component.name!r} is decentralised (nodes on a graph, no server); run it with "
            "`robustfl run`"
        )


@app.command()
def launch(
    config: Annotated[Path, typer.Argument(help="The experiment's TOML file.")],
    nproc: Annotated[int, typer.Option(help="Processes on this machine: 1 server (rank 0) + workers.")] = 2,
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<name>-<time>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its newest checkpoint.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    nnodes: Annotated[int, typer.Option(help="Machines taking part (torchrun --nnodes).")] = 1,
    node_rank: Annotated[int, typer.Option(help="This machine's index (0 hosts the server).")] = 0,
    master_addr: Annotated[str | None, typer.Option(help="Address of machine 0 (several machines).")] = None,
    master_port: Annotated[int, typer.Option(help="Port of the rendezvous on machine 0.")] = 29500,
) -> None:
    """Run CONFIG on NPROC processes (torch.distributed): rank 0 serves, the others compute clients."""
    from robustfl.experiment.config import load_config

    with user_errors():
        cfg = load_config(config, set_ or [])
        _refuse_decentralised(cfg)
        if nproc * nnodes < 2:
            raise ValueError("--nproc: a launch needs at least 2 processes in all (a server and a worker)")
        if nproc * nnodes - 1 > cfg.workers.n:
            raise ValueError(
                f"--nproc: {nproc * nnodes - 1} worker processes for only workers.n = {cfg.workers.n} clients; "
                f"use at most {cfg.workers.n + 1} processes"
            )
        if cfg.workers.replicas > nproc * nnodes - 1:
            raise ValueError(
                f"workers.replicas = {cfg.workers.replicas} needs at least {cfg.workers.replicas + 1} processes "
                f"(--nproc {nproc} gives {nproc * nnodes - 1} workers)"
            )
        if resume and out is None:
            raise ValueError("--resume needs --out RUN_DIR: the run to continue")
        out_dir = out or default_out(cfg.name)
        cmd = torchrun_command(
            nproc,
            config,
            set_ or [],
            out_dir,
            resume=resume,
            quiet=quiet,
            nnodes=nnodes,
            node_rank=node_rank,
            master_addr=master_addr,
            master_port=master_port,
        )
    code = _wait(subprocess.Popen(cmd), out_dir / "summary.json")
    if code != 0:
        typer.secho(
            f"robustfl launch: the run stopped (status {code}); continue it with: robustfl launch "
            f"--nproc {nproc} {config} --out {out_dir} --resume",
            fg="red",
            err=True,
        )
        raise typer.Exit(code)
    typer.echo(f"run directory: {out_dir}")
