"""BGMD (k = d/10) vs full geometric median, both running exactly T Weiszfeld steps (no early stop).

Both start from 0 with nu = 0.1 (ByzFL's GeometricMedian, ``GeometricMedian.byzfl()`` with T changed),
so the comparison is fixed T against fixed T, never against a run to a tolerance.

Prints, per (n, d, T), the median seconds of ``GeometricMedian(T=T)`` and of
``BlockGeometricMedian(ratio=0.1, T=T)`` and their ratio, measured in one run. BGMD pays a fixed
O(nd) cost per call (column sums and squared sums for Alg. 2's sampling, an O(d) sample, a gather),
then T steps on n x k; full GM pays T steps on n x d. So the ratio grows with T towards d/k.

    PYTHONPATH=src python benchmarks/bgmd_vs_gm.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from robustfl.aggregators import BlockGeometricMedian, GeometricMedian


def median_seconds(fn: Callable[[torch.Tensor], object], x: torch.Tensor, repeats: int) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [(8, 2048)] if args.quick else [(16, 65_536), (64, 65_536)]
    steps = [3, 20] if args.quick else [3, 20, 100, 500]
    repeats = 2 if args.quick else 15
    print(f"{'n':>4}{'d':>8}{'T':>5}  {'GM ms':>9}  {'BGMD ms':>9}  {'GM / BGMD':>9}")
    for n, d in sizes:
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
        for T in steps:
            gm = median_seconds(GeometricMedian(nu=0.1, T=T, tol=None, init="zero"), x, repeats)
            bgmd = median_seconds(BlockGeometricMedian(ratio=0.1, nu=0.1, T=T, tol=None), x, repeats)
            print(f"{n:>4}{d:>8}{T:>5}  {gm * 1e3:>9.2f}  {bgmd * 1e3:>9.2f}  {gm / bgmd:>8.2f}x")


if __name__ == "__main__":
    main()
