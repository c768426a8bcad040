"""What one training round of ``robustfl reproduce bgmd-speed`` costs per method, side by side.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bgmd_round_cost.py                # 80 rows (groups of 4)
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bgmd_round_cost.py --group 1      # 320 per-sample rows
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bgmd_round_cost.py --quick        # 8 rows, 2 rounds

For each group size (``320 / group`` gradient rows, seed 000's ``G_t``) it builds the bgmd-speed run of
SGD, CMD, GMD and BGMD (GM solved to tolerance 1e-8 in at most 100 Weiszfeld steps) and steps them in
turn, one round of each method after the other, so a change of the machine's load hits all four alike.
Printed per method: the process CPU seconds of a round (median), its wall-clock seconds, and the
aggregation share ``s`` of the round (the aggregate phase's share of the step's phase timers). A round
costs ``c + a``; no aggregator can make it more than ``1 / (1 - s)`` faster, and BGMD's round speed-up
over GMD is the ratio of their CPU seconds. The CPU clock is load-proof for scheduling only: the GM
streams the ``rows x d`` matrix through memory at every Weiszfeld step, so memory-bandwidth contention
from other jobs still lengthens its CPU seconds (compare runs at different loads with care).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from robustfl.experiment import bgmd_speed as bs
from robustfl.experiment import bgmd_table2 as t2
from robustfl.experiment.build import build_run
from robustfl.experiment.config import load_config


def measure(group: int, corruption: str, rounds: int, methods: list[str]) -> dict[str, dict[str, float]]:
    """Median CPU / wall seconds per round and the mean aggregation share of each method."""
    runs = {
        m: build_run(
            load_config(t2.config_dir() / f"{m}_{corruption}.toml", bs.cell_overrides(m, corruption, group))
        )
        for m in methods
    }
    for run in runs.values():
        run.step()  # warm-up: first-call allocations
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    wall: dict[str, list[float]] = {m: [] for m in methods}
    share: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m, run in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            seconds = run.step().seconds
            cpu[m].append(time.process_time() - c0)
            wall[m].append(time.perf_counter() - w0)
            share[m].append(seconds.get("aggregate", 0.0) / max(sum(seconds.values()), 1e-12))
    return {
        m: {
            "cpu": statistics.median(cpu[m]),
            "wall": statistics.median(wall[m]),
            "share": statistics.fmean(share[m]),
        }
        for m in methods
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--group", type=int, action="append", help="samples per row (repeatable; default 4, 1)"
    )
    parser.add_argument("--corruption", default="bitflip_20", choices=list(t2.CORRUPTIONS))
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds per method")
    parser.add_argument("--quick", action="store_true", help="smoke run: groups of 40 (8 rows), 2 rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    groups = [40] if args.quick else (args.group or [4])
    rounds = 2 if args.quick else args.rounds
    methods = list(t2.METHODS)
    print(f"load average at start: {os.getloadavg()[0]:.1f}; {args.corruption}; {rounds} rounds per method")
    print("| rows | method | CPU s / round | wall s / round | aggregation share | bound 1/(1-s) |")
    print("|---|---|---|---|---|---|")
    for group in groups:
        cost = measure(group, args.corruption, rounds, methods)
        for m in methods:
            c = cost[m]
            bound = bs.round_bound(min(c["share"], 0.999))
            print(
                f"| {320 // group} | {m} | {c['cpu']:.3f} | {c['wall']:.3f} | {100 * c['share']:.0f}% | {bound:.2f} |"
            )
        ratio = cost["gmd"]["cpu"] / cost["bgmd"]["cpu"]
        print(f"| {320 // group} | GMD / BGMD round CPU | {ratio:.2f}x | | | |")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
