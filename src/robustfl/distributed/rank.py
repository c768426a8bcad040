"""One rank of ``robustfl launch`` (started by torchrun through the supervisor in ``__main__``).

Rank 0 runs the experiment loop (:func:`robustfl.experiment.runner.run`: metrics, checkpoints,
``--resume``) around a :class:`~robustfl.distributed.server.DistributedServer`; ranks ``1..P-1`` are
:class:`~robustfl.distributed.worker.Worker` s. The process group is gloo on CPU, and gloo for CPU
tensors plus NCCL for CUDA tensors when ``training.device`` is CUDA (the frames then travel as CUDA
tensors: one GPU per rank, NCCL's rule). Its timeout is long: the runtime's own deadline is
``training.round_timeout``, enforced without socket timeouts (see ``transport``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from robustfl.distributed.assignment import contiguous
from robustfl.experiment.config import ExperimentConfig

log = logging.getLogger("robustfl.distributed")
GROUP_TIMEOUT = datetime.timedelta(days=7)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robustfl-rank")
    parser.add_argument("config")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the supervisor dies, so no rank outlives its launch."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s rank %(process)d %(message)s", stream=sys.stderr
    )
    from robustfl.experiment.build import build_run
    from robustfl.experiment.config import load_config

    cfg = load_config(args.config, args.sets)
    device = torch.device(cfg.training.device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        backend, link_device = "cpu:gloo,cuda:nccl", torch.device("cuda", torch.cuda.current_device())
    else:
        backend, link_device = "gloo", torch.device("cpu")
    dist.init_process_group(backend, timeout=GROUP_TIMEOUT)
    rank, world = dist.get_rank(), dist.get_world_size()
    out = Path(args.out)
    pids = out / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"rank{rank}.pid").write_text(str(os.getpid()))
    assignment = contiguous(cfg.workers.n, world - 1, replicas=cfg.workers.replicas)
    run = build_run(cfg)
    if rank != 0:
        from robustfl.distributed.worker import Worker

        Worker(cfg, run, rank, assignment[rank], out, link_device).serve()
        return 0
    return serve(cfg, run, assignment, out, link_device, args)


def serve(
    cfg: ExperimentConfig,
    run: Any,
    assignment: dict[int, Tensor],
    out: Path,
    device: torch.device,
    args: argparse.Namespace,
) -> int:
    """Rank 0: the runner around the distributed server; exit status 0, or 2 with one message."""
    from robustfl.distributed.server import DistributedServer
    from robustfl.distributed.transport import ServerLink
    from robustfl.experiment.runner import run as run_experiment

    sim = run.sim
    max_bytes = (1 << 26) + 32 * sim.n * sim.flat.dim * len(sim.algorithm.parts)
    link = ServerLink(sorted(assignment), device, max_bytes)
    server = DistributedServer(cfg, run, link, assignment)
    server.wait_ready(max(120.0, 10 * cfg.training.round_timeout))
    try:
        run_experiment(cfg, out, resume=args.resume, quiet=args.quiet, build=lambda _: server)
    except ValueError as err:
        print(f"robustfl launch: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException:  # a bug or an interrupt: report it, then leave without waiting on peers
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pending receives of dead peers must not block the exit
