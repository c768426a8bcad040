"""Seconds per round by phase for every registered federated algorithm, and the peak memory of each.

    PYTHONPATH=src python benchmarks/algorithms.py                    # 20 and 100 clients (minutes)
    PYTHONPATH=src python benchmarks/algorithms.py --quick            # 20 clients, 1 round, sgd and mime
    PYTHONPATH=src python benchmarks/algorithms.py --algorithm scaffold --sizes 100 --json out.json

Every algorithm of ``robustfl.algorithms.ALGORITHMS`` (one name per class; the ones registered when it
runs), LeNet on embedded MNIST, batch 32, the vectorised path, the mean (RSA and C-RSA ignore it), all
clients every round, two local steps for the algorithms that take several (FL-BGMD: a sync every two).
Each (algorithm, client count) cell runs in a **fresh process** (``--cell``): one warm-up round, then
``--rounds`` rounds; it reports the median CPU seconds (``time.process_time``, that process, one thread)
and wall seconds per round, the median wall seconds of each phase (plan, compute, attack, compress,
aggregate, update: ``RoundStats.seconds``), and memory as ``getrusage`` peak resident set size of the
cell's process — ``peak_mib`` in all (Python, torch, the data, the simulator) and ``growth_mib`` since
just before the simulator was built (per-client state such as RSA's ``n`` models shows up there).
An algorithm the simulator cannot run this way (one that needs its own model or topology) is listed
with the reason instead of numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHOWN = ("plan", "compute", "attack", "compress", "aggregate", "update")
CASES: dict[str, dict[str, Any]] = {
    "fl-bgmd": {"sync_every": 2},
    "rsa": {"lam": 0.005},
    "c-rsa": {"lam": 0.005, "gamma": 0.5},
    "masked": {"local_steps": 2, "dense_rounds": 0},  # every round masked (10% core), q tracked
}
"""Constructor arguments where the defaults are not the benchmark's (else: ``local_steps = 2`` when the
constructor takes it)."""


def algorithm_names() -> list[str]:
    """One registry name per algorithm class, in registration order."""
    from robustfl.algorithms import ALGORITHMS

    return ALGORITHMS.primary_names()


def case_params(name: str) -> dict[str, Any]:
    """The benchmark's constructor arguments for ``name``."""
    from robustfl.algorithms import ALGORITHMS

    if name in CASES:
        return dict(CASES[name])
    return {"local_steps": 2} if "local_steps" in ALGORITHMS.parameters(name) else {}


def peak_mib() -> float:
    """Peak resident set size of this process (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, n: int, rounds: int) -> dict[str, Any]:
    """One cell, in this process: warm-up round, then ``rounds`` timed rounds."""
    import torch

    from robustfl import aggregators, algorithms
    from robustfl.data import load_dataset, partition
    from robustfl.engine import Simulator
    from robustfl.models import build_model
    from robustfl.streams import Streams

    torch.set_num_threads(1)
    data = load_dataset("embedded-mnist")
    parts = partition(data.y_train, n, "iid", generator=Streams(0).shared("partition"))
    torch.manual_seed(0)
    model = build_model("lenet", data.input_shape, data.num_classes)
    before = peak_mib()
    params = case_params(name)
    sim = Simulator(
        model, data, parts, algorithms.get(name, **params), aggregators.get("mean"),
        batch_size=32, lr=0.05, seed=0, vectorise=True,
    )  # fmt: skip
    sim.step()
    walls, cpus, phases = [], [], []
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        stats = sim.step()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        phases.append(stats.seconds)
    return {
        "algorithm": name,
        "params": params,
        "clients": n,
        "rounds": rounds,
        "cpu_s": statistics.median(cpus),
        "wall_s": statistics.median(walls),
        **{p: statistics.median(s.get(p, 0.0) for s in phases) for p in SHOWN},
        "peak_mib": peak_mib(),
        "growth_mib": peak_mib() - before,
    }


def run_cell(name: str, n: int, rounds: int) -> dict[str, Any]:
    """``measure`` in a fresh interpreter (so peak RSS is this cell's own); failures become a row
    with the reason."""
    cmd = [sys.executable, __file__, "--cell", name, str(n), str(rounds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"algorithm": name, "clients": n, "skipped": reason[:200]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def fmt_row(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"{r['algorithm']:12} {r['clients']:4d}  skipped: {r['skipped']}"
    cols = " ".join(f"{r[p]:9.4f}" for p in SHOWN)
    return (
        f"{r['algorithm']:12} {r['clients']:4d} {r['cpu_s']:7.3f} {r['wall_s']:7.3f} {cols}"
        f" {r['peak_mib']:8.0f} {r['growth_mib']:8.1f}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 clients, 1 round, sgd and mime")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per cell (after one warm-up)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100], help="clients per round")
    parser.add_argument("--algorithm", action="append", help="only these (repeatable); default: all")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--cell", nargs=3, metavar=("NAME", "N", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or any(n < 1 for n in args.sizes):
        parser.error("--rounds and every --sizes value must be >= 1")
    known = algorithm_names()
    unknown = [a for a in args.algorithm or [] if a not in known]
    if unknown:
        parser.error(f"unknown algorithm {', '.join(unknown)}; registered: {', '.join(known)}")
    if args.quick:
        args.sizes, args.rounds = [20], 1
        args.algorithm = args.algorithm or ["sgd", "mime"]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cell:
        name, n, rounds = args.cell
        print(json.dumps(measure(name, int(n), int(rounds))))
        return
    names = args.algorithm or algorithm_names()
    header = f"{'algorithm':12} {'n':>4} {'cpu s':>7} {'wall s':>7} " + " ".join(f"{p:>9}" for p in SHOWN)
    print(header + f" {'peak MiB':>8} {'+MiB':>8}", flush=True)
    rows = []
    for n in args.sizes:
        for name in names:
            row = run_cell(name, n, args.rounds)
            rows.append(row)
            print(fmt_row(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
