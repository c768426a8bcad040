"""Seconds per round by phase for every federated algorithm, and the peak memory of each.

    PYTHONPATH=src python benchmarks/algorithms.py            # 20 and 100 clients (minutes)
    PYTHONPATH=src python benchmarks/algorithms.py --quick    # 20 clients, 2 rounds (seconds)
    PYTHONPATH=src python benchmarks/algorithms.py --only fedavg --only masked   # a subset, side by side

LeNet on embedded MNIST, batch 32, the vectorised path, the mean (C-RSA and RSA ignore it), two local
steps for the algorithms that take several. For each algorithm and client count: the median CPU
seconds (``time.process_time``, this process) and wall seconds per round after one warm-up round, the
median seconds of each phase, and the growth of the peak resident memory while the algorithm ran
(``getrusage`` max RSS, so only increases show: per-client state such as RSA's ``n`` models shows up).
All algorithms are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any

import torch

from robustfl import aggregators, algorithms
from robustfl.data import load_dataset, partition
from robustfl.engine import PHASES, Simulator
from robustfl.models import build_model
from robustfl.utils import make_generator

CASES: dict[str, dict[str, Any]] = {
    "sgd": {},
    "fedavg": {"local_steps": 2},
    "fedprox": {"local_steps": 2},
    "scaffold": {"local_steps": 2},
    "mimelite": {"local_steps": 2},
    "mime": {"local_steps": 2},
    "fl-bgmd": {"sync_every": 2},
    "rsa": {},
    "c-rsa": {},
    "masked": {"local_steps": 2, "dense_rounds": 0},  # every round masked (10% core), q tracked
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, n: int, rounds: int) -> dict[str, Any]:
    data = load_dataset("embedded-mnist")
    parts = partition(data.y_train, n, "iid", generator=make_generator(0, "partition"))
    torch.manual_seed(0)
    model = build_model("lenet", data.input_shape, data.num_classes)
    before = peak_mib()
    sim = Simulator(
        model, data, parts, algorithms.get(name, **CASES[name]), aggregators.get("mean"),
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
        "clients": n,
        "cpu_s": statistics.median(cpus),
        "wall_s": statistics.median(walls),
        **{p: statistics.median(s[p] for s in phases) for p in PHASES},
        "peak_growth_mib": peak_mib() - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 clients, 2 rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only", action="append", choices=list(CASES), help="measure only these (repeatable)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes, rounds = ([20], 2) if args.quick else ([20, 100], args.rounds)
    header = f"{'algorithm':10} {'n':>4} {'cpu s':>7} {'wall s':>7} " + " ".join(f"{p:>9}" for p in PHASES)
    print(header + f" {'peak +MiB':>9}")
    for n in sizes:
        for name in args.only or CASES:
            r = measure(name, n, rounds)
            cols = " ".join(f"{r[p]:9.4f}" for p in PHASES)
            print(f"{name:10} {n:4d} {r['cpu_s']:7.3f} {r['wall_s']:7.3f} {cols} {r['peak_growth_mib']:9.1f}")


if __name__ == "__main__":
    main()
