"""PUFFERFISH mini-benchmark: training-step time of vanilla vs hybrid ResNet-18 and VGG-19-BN.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/pufferfish.py            # batch 128, 3 steps
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/pufferfish.py --quick    # smoke run
    PYTHONPATH=src python benchmarks/pufferfish.py --device cuda                # on a GPU, if any

The seed's Table 4.6 (Wang, Agarwal and Papailiopoulos, MLSys 2021) times one epoch of CIFAR-10 at
batch 128 on a V100: 1.48x (ResNet-18) and 1.23x (VGG-19) faster for the hybrid networks. Here one
step = forward + backward + SGD-with-momentum update on a random 3x32x32 batch; the vanilla and the
hybrid network of each pair are timed alternately (``--steps`` rounds after ``--warmup``), so load
on a shared machine hits both alike, and the ratio of the medians is reported with parameter counts
and MACs (counted on the meta device, ``robustfl.models.macs``). "epoch" = 391 steps (50,000 / 128).

The last columns project the time of one data-parallel iteration on the chapter's cluster of 8
p3.2xlarge nodes (ring all-reduce of the float32 gradient at 10 Gbit/s, ``robustfl.commtime``):
the measured step plus the modelled communication. A second table times Algorithm 2's SVD switch
(vanilla -> hybrid, Table 4.19).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from robustfl.commtime import cluster
from robustfl.models import HYBRIDS, build_model, hybrid, num_parameters
from robustfl.models.macs import model_macs

PAIRS = (("ResNet-18", "resnet18"), ("VGG-19-BN", "vgg19-bn"))
STEPS_PER_EPOCH = 391


def step_fn(model: nn.Module, batch: int, device: torch.device) -> Callable[[], float]:
    """A closure running one training step on a fixed random batch and returning its seconds."""
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def bench(
    batch: int, steps: int, warmup: int, device: torch.device, pairs: tuple[tuple[str, str], ...] = PAIRS
) -> list[str]:
    comm = cluster("p3.2xlarge-8")
    rows = [
        "| model | params | MACs (G) | step (s) | epoch (s, est.) | speed-up | + all-reduce 8 x p3 (s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, name in pairs:
        torch.manual_seed(0)
        models = {v: build_model(f"{name}{v}", (3, 32, 32), 10) for v in ("", "-pufferfish")}
        runners = {v: step_fn(m, batch, device) for v, m in models.items()}
        for _ in range(warmup):
            for run in runners.values():
                run()
        times: dict[str, list[float]] = {v: [] for v in runners}
        for _ in range(steps):
            for v, run in runners.items():
                times[v].append(run())
        med = {v: statistics.median(t) for v, t in times.items()}
        total = {v: med[v] + comm.communication("allreduce", 32 * num_parameters(models[v])) for v in med}
        for v in ("", "-pufferfish"):
            macs = model_macs(f"{name}{v}", (3, 32, 32), 10) / 1e9
            kind = "PUFFERFISH" if v else "vanilla"
            speed = f"{med[''] / med[v]:.2f}x" if v else "-"
            speed_all = f"{total[''] / total[v]:.2f}x" if v else "-"
            rows.append(
                f"| {kind} {label} | {num_parameters(models[v]):,} | {macs:.2f} | {med[v]:.3f} | "
                f"{med[v] * STEPS_PER_EPOCH:.0f} | {speed} | {total[v]:.3f} | {speed_all} |"
            )
    return rows


def svd_switch(pairs: tuple[tuple[str, str], ...] = PAIRS) -> list[str]:
    """Seconds Algorithm 2's SVD switch (``hybrid(..., svd=True)``) takes per network (Table 4.19)."""
    rows = ["| model | SVD switch (s) |", "|---|---:|"]
    for label, name in pairs:
        vanilla = build_model(name, (3, 32, 32), 10)
        start = time.perf_counter()
        hybrid(vanilla, HYBRIDS[name], svd=True)
        rows.append(f"| {label} | {time.perf_counter() - start:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch 4, one step: a smoke run")
    args = parser.parse_args()
    batch, steps, warmup = (4, 1, 0) if args.quick else (args.batch, args.steps, args.warmup)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} batch={batch} steps={steps} warmup={warmup}")
    for row in bench(batch, steps, warmup, device):
        print(row)
    print()
    for row in svd_switch():
        print(row)


if __name__ == "__main__":
    main()
