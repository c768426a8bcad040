"""Simulator speed and memory: vectorised vs loop, seconds per phase, peak RSS.

    PYTHONPATH=src python benchmarks/simulator.py            # full run (minutes)
    PYTHONPATH=src python benchmarks/simulator.py --quick    # smoke test (seconds)

1. Rounds per second of the vectorised (``vmap``) path and the per-client loop, LeNet on embedded
   MNIST, batch 32, distributed SGD with the mean, 20 and 100 clients; the ratio (target >= 5x at 20).
   Also the compute phase against one forward/backward over the union of all clients' batches, the
   floor for any batching of the clients (on CPU LeNet is compute-bound, so this floor bounds the
   speed-up).
2. Seconds per round by phase (compute, attack, compress, aggregate, update) for SGD (mean), GMD
   (geometric median) and BGMD (block geometric median, k = 10% of d) on the same 20- and 100-client setups,
   with the rules' default Weiszfeld budget (T = 3) and with the GM solved to tolerance (T = 100,
   tol = 1e-6, the regime of seed 000's epsilon-accurate GM oracle); the ratio of GMD's to BGMD's
   aggregation time (target >= 3x).
3. Peak resident memory (``getrusage`` max RSS) of a fresh process that builds a 100-client LeNet
   simulator and runs one round (target < 4 GiB).
4. ``--scale``: the setting of the scale comparison (MLP 784-200-200-10, batch 32, one local step,
   coordinate-wise median, one thread) at 20, 100, 500 and 1,000 clients per round (``--sizes``):
   CPU seconds per round and by phase, wall seconds per round and the peak RSS, each size in a fresh
   process; with ``--against REV`` each size also runs on git revision ``REV`` right after, and the
   two runs' final parameters are compared (a difference is printed).
5. ``--against REV``: this tree against git revision ``REV`` (checked out in a temporary worktree) on
   the same 20-client round, in alternating fresh processes, so both see the same machine load; prints
   the median CPU seconds per round of each and their ratio (Engine v2's target: at most 5% slower).

Timings are medians over rounds after one warm-up round, measured in one run. Rounds per second and
speed-ups are given in CPU time of this process (``time.process_time``; with one thread that is the
compute done) and in wall time; on a shared machine the wall time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

from robustfl import aggregators, algorithms
from robustfl.data import load_dataset, partition
from robustfl.engine import PHASES, Simulator
from robustfl.models import build_model
from robustfl.utils import make_generator


def make_sim(n: int, aggregator: Any, vectorise: bool | None = True, seed: int = 0) -> Simulator:
    data = load_dataset("embedded-mnist")
    parts = partition(data.y_train, n, "iid", generator=make_generator(seed, "partition"))
    torch.manual_seed(seed)
    model = build_model("lenet", data.input_shape, data.num_classes)
    return Simulator(
        model, data, parts, algorithms.get("sgd"), aggregator,
        batch_size=32, lr=0.05, seed=seed, vectorise=vectorise,
    )  # fmt: skip


def median_round_seconds(sim: Simulator, rounds: int) -> tuple[float, float, dict[str, float]]:
    """Median wall seconds, median CPU seconds of this process, and median seconds per phase per round,
    after one warm-up round. On a shared machine the CPU time is the stabler measure of the work done."""
    sim.step()
    walls, cpus, phases = [], [], []
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        stats = sim.step()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        phases.append(stats.seconds)
    phase = {p: statistics.median(s[p] for s in phases) for p in PHASES}
    return statistics.median(walls), statistics.median(cpus), phase


def union_batch_seconds(sim: Simulator, rounds: int) -> float:
    """Median CPU seconds of ONE forward/backward over all ``n * B`` samples of a round (no per-client
    gradients): the least compute any batching of the clients can cost."""
    times = []
    for r in range(rounds + 1):
        idx = sim.sampler.sample(torch.arange(sim.n), r, 1, sim.batch_size).flatten()
        c = time.process_time()
        leaf = sim.params.detach().requires_grad_(True)
        torch.autograd.grad(sim.flat.loss(leaf, sim.x_store[idx], sim.y_store[idx]), leaf)
        times.append(time.process_time() - c)
    return statistics.median(times[1:])


def vectorised_vs_loop(clients: list[int], rounds: int) -> None:
    print("\n## Vectorised vs loop (LeNet, embedded MNIST, batch 32, SGD + mean)\n")
    print(
        "| clients | vectorised rounds/s (CPU) | loop rounds/s (CPU) | speed-up (CPU) | speed-up (wall) "
        "| union-batch floor: loop CPU / one n*B fwd+bwd |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in clients:
        vec_sim = make_sim(n, aggregators.get("mean"), vectorise=True)
        vec_wall, vec_cpu, _ = median_round_seconds(vec_sim, rounds)
        loop_wall, loop_cpu, _ = median_round_seconds(
            make_sim(n, aggregators.get("mean"), vectorise=False), rounds
        )
        union = union_batch_seconds(vec_sim, rounds)
        print(
            f"| {n} | {1 / vec_cpu:.2f} | {1 / loop_cpu:.2f} | {loop_cpu / vec_cpu:.2f}x | "
            f"{loop_wall / vec_wall:.2f}x | {loop_cpu / union:.2f}x |"
        )


def phases_by_rule(n: int, rounds: int) -> None:
    d = make_sim(n, aggregators.get("mean")).flat.dim
    k = d // 10
    rules = {
        "SGD (mean)": aggregators.get("mean"),
        "GMD (GM, T=3)": aggregators.get("geometric-median"),
        "BGMD (k = d/10, T=3)": aggregators.get("bgmd", k=k),
        "GMD (GM, T=100, tol=1e-6)": aggregators.get("geometric-median", T=100, tol=1e-6),
        "BGMD (k = d/10, T=100, tol=1e-6)": aggregators.get("bgmd", k=k, T=100, tol=1e-6),
    }
    print(f"\n## Seconds per round by phase ({n} clients, LeNet d = {d}, batch 32, vectorised)\n")
    print("| rule | " + " | ".join(PHASES) + " | round |")
    print("|---|" + "---:|" * (len(PHASES) + 1))
    aggregate = {}
    for name, rule in rules.items():
        total, _, phases = median_round_seconds(make_sim(n, rule), rounds)
        aggregate[name] = phases["aggregate"]
        print(f"| {name} | " + " | ".join(f"{phases[p]:.4f}" for p in PHASES) + f" | {total:.4f} |")
    print()
    for gmd, bgmd in [(1, 2), (3, 4)]:
        a, b = list(rules)[gmd], list(rules)[bgmd]
        print(f"- aggregation time {a} / {b}: {aggregate[a] / aggregate[b]:.2f}x")


def rss_probe() -> None:
    """Run in a fresh process: one round of a 100-client LeNet simulator, then print max RSS in bytes."""
    make_sim(100, aggregators.get("mean")).step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def peak_rss() -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-probe"], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    print(f"\n## Peak RSS of a 100-client LeNet round: {int(out) / 2**30:.2f} GiB (fresh process)")


PROBE = """
import statistics, sys, time, torch
from robustfl import aggregators, algorithms
from robustfl.data import load_dataset, partition
from robustfl.engine import Simulator
from robustfl.models import build_model
from robustfl.utils import make_generator
torch.set_num_threads(1)
data = load_dataset("embedded-mnist")
parts = partition(data.y_train, 20, "iid", generator=make_generator(0, "partition"))
torch.manual_seed(0)
sim = Simulator(build_model("lenet", data.input_shape, data.num_classes), data, parts,
                algorithms.get("sgd"), aggregators.get("mean"), batch_size=32, lr=0.05, seed=0)
sim.step()
cpus = []
for _ in range(int(sys.argv[1])):
    c = time.process_time(); sim.step(); cpus.append(time.process_time() - c)
print(statistics.median(cpus))
"""


SCALE_PROBE = """
import resource, statistics, sys, time, json, types, torch
import robustfl.engine.simulator as simulator_module
from robustfl import aggregators, algorithms
from robustfl.data import load_dataset, partition
from robustfl.engine import PHASES, Simulator
from robustfl.models import build_model
from robustfl.streams import Streams
torch.set_num_threads(1)
# the simulator's phase timer reads this process's CPU time: on a shared machine, the work done
simulator_module.time = types.SimpleNamespace(perf_counter=time.process_time)
n, rounds = int(sys.argv[1]), int(sys.argv[2])
data = load_dataset("embedded-mnist")
parts = partition(data.y_train, n, "iid", generator=Streams(0).shared("partition"))
torch.manual_seed(0)
sim = Simulator(build_model("mlp", data.input_shape, data.num_classes, hidden=[200, 200]), data, parts,
                algorithms.get("sgd"), aggregators.get("median"), batch_size=32, lr=0.05, seed=0)
sim.step()
stats, walls = [], []
for _ in range(rounds):
    t = time.perf_counter()
    stats.append(sim.step())
    walls.append(time.perf_counter() - t)
phases = {p: statistics.median(s.seconds[p] for s in stats) for p in PHASES}
print(json.dumps({"wall": statistics.median(walls), "cpu": statistics.median(sum(s.seconds.values()) for s in stats),
                  "phases": phases, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "params": float(sim.params.double().sum())}))
"""


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def _scale_probe(src: str, n: int, rounds: int) -> dict[str, Any]:
    import json

    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", SCALE_PROBE, str(n), str(rounds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def scale(sizes: list[int], rounds: int, against: str | None = None) -> None:
    """Seconds per round by phase and peak RSS at each cohort size (fresh process each); with
    ``against``, the same probe on git revision ``against`` right after, size by size."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    head = subprocess.run(
        ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print("\n## Scale: MLP 784-200-200-10, batch 32, one local step, median, 1 thread\n")
    print(
        f"torch {torch.__version__}; this tree at {head or '?'}; load average at the start {_load()}; "
        f"median over {rounds} rounds after a warm-up; phases in CPU seconds of the process"
    )
    print(
        "\n| clients | tree | rounds/s (CPU) | round CPU s | round wall s | "
        + " | ".join(PHASES)
        + " | peak RSS GiB |"
    )
    print("|---:|---|---:|---:|---:|" + "---:|" * len(PHASES) + "---:|")
    with _checkout(here, against) as old:
        trees = [("this tree", os.path.join(here, "src"))] + ([(against, old)] if against and old else [])
        for n in sizes:
            sums = []
            for label, src in trees:
                r = _scale_probe(src, n, rounds)
                sums.append(r["params"])
                cells = " | ".join(f"{r['phases'][p]:.3f}" for p in PHASES)
                print(
                    f"| {n} | {label} | {1 / r['cpu']:.2f} | {r['cpu']:.3f} | {r['wall']:.3f} | {cells} "
                    f"| {r['rss'] / 2**30:.2f} |",
                    flush=True,
                )
            if len(sums) == 2 and sums[0] != sums[1]:
                print(f"| {n} | parameters differ: {sums[0]!r} vs {sums[1]!r} |")
    print(f"\nload average at the end: {_load()}")


@contextlib.contextmanager
def _checkout(here: str, rev: str | None) -> Iterator[str | None]:
    """``rev``'s ``src`` in a temporary worktree (``None`` when no revision is asked for)."""
    import tempfile

    if rev is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "old")
        subprocess.run(
            ["git", "-C", here, "worktree", "add", "--detach", old, rev], check=True, capture_output=True
        )
        try:
            yield os.path.join(old, "src")
        finally:
            subprocess.run(["git", "-C", here, "worktree", "remove", "--force", old], check=False)


def against(rev: str, pairs: int, rounds: int) -> None:
    """Median CPU s/round of this tree vs ``rev``, alternating fresh processes (see the docstring)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    times: dict[str, list[float]] = {"this tree": [], rev: []}
    with _checkout(here, rev) as old:
        assert old is not None
        for _ in range(pairs):
            for label, src in (("this tree", os.path.join(here, "src")), (rev, old)):
                env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
                out = subprocess.run(
                    [sys.executable, "-c", PROBE, str(rounds)],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                times[label].append(float(out.stdout.split()[-1]))
    new, base = statistics.median(times["this tree"]), statistics.median(times[rev])
    print(
        f"\n## This tree vs {rev}: LeNet, 20 clients, SGD + mean, {pairs} alternating process pairs x {rounds} rounds\n"
    )
    print("| tree | median CPU s / round |\n|---|---:|")
    print(f"| this tree | {new:.4f} |\n| {rev} | {base:.4f} |")
    print(
        f"\nratio this / {rev}: {new / base:.3f} (pairs: "
        + ", ".join(f"{a / b:.3f}" for a, b in zip(times["this tree"], times[rev], strict=True))
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 timed rounds, 20 clients")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--against", metavar="REV", help="compare this tree with git revision REV only")
    parser.add_argument("--scale", action="store_true", help="only the 20-1000 clients scale table")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[20, 100, 500, 1000], help="cohort sizes for --scale"
    )
    parser.add_argument("--pairs", type=int, default=5, help="alternating process pairs for --against")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_probe:
        rss_probe()
        return
    rounds = 2 if args.quick else args.rounds
    if args.scale:
        scale([20, 100] if args.quick else args.sizes, rounds, args.against)
        return
    if args.against:
        against(args.against, args.pairs, rounds)
        return
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {args.threads} thread(s), {rounds} timed rounds per row; load {load}")
    clients = [20] if args.quick else [20, 100]
    vectorised_vs_loop(clients, rounds)
    for n in clients:
        phases_by_rule(n, rounds)
    peak_rss()
    print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
