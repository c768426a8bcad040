"""Decentralised gossip: seconds per round by phase, peak memory, and a small accuracy study.

    PYTHONPATH=src python benchmarks/gossip.py                 # speed: 64 nodes, ring / torus / ER (minutes)
    PYTHONPATH=src python benchmarks/gossip.py --accuracy      # accuracy table, 16 nodes (minutes)
    PYTHONPATH=src python benchmarks/gossip.py --quick         # smoke test of both (seconds)

1. **Speed** (default): LeNet on embedded MNIST, batch 32, one local step and one gossip step per round,
   ``--nodes`` nodes (64) of which 2 Byzantine (ALIE per receiver), identity compressor (``--compressor``
   to change), for each topology (ring, torus, Erdős–Rényi with the default ``p = 2 ln(n)/n``) and
   neighbour rule (weighted = plain CHOCO, clip = ClippedGossip with the adaptive radius, median over
   the node and its neighbours). Each setting runs in a fresh process: median seconds per round by phase
   (wall clock) and CPU seconds per round (``time.process_time``, one thread: the work done, stabler
   than wall time on a shared machine) over ``--rounds`` rounds after one warm-up round, and that
   process's peak resident memory (``getrusage`` max RSS).
2. **Accuracy** (``--accuracy``): 16 nodes, MLP 784-64-10 on embedded MNIST (IID split), batch 32, one
   local step and one gossip step, lr 0.1, ``--accuracy-rounds`` rounds (150); ring vs torus vs complete;
   no attack vs 2 Byzantine nodes (random ids) sending ``-(mean of the receiver's honest view)``
   (``sign-flip``, per receiver); the weighted rule (plain gossip) vs self-centred clipping. Reports
   the honest nodes' mean and worst test accuracy and their consensus distance at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

TOPOLOGIES = ("ring", "torus", "erdos-renyi")
RULES = {"weighted": [], "clip": [], "median": ["aggregator.name=median"]}
PHASES = ("plan", "compute", "compress", "attack", "aggregate", "update")


def speed_sets(nodes: int, topology: str, rule: str, compressor: str | None) -> list[str]:
    name = "aggregator" if rule == "median" else rule
    sets = [
        "model.name=lenet",
        f"workers.n={nodes}",
        "workers.f=2",
        "byzantine.ids=random",
        "attack.name=alie",
        "training.batch_size=32",
        "training.lr=0.05",
        "algorithm.name=gossip",
        f"algorithm.params={{topology = '{topology}', rule = '{name}'}}",
        *RULES[rule],
    ]
    if compressor:
        sets += [f"compressor.name={compressor}", "compressor.params={ratio = 0.01}"]
    return sets


def measure(sets: list[str], rounds: int) -> dict[str, Any]:
    """Build the run of ``sets`` and time ``rounds`` rounds after a warm-up (in this process)."""
    import torch

    from robustfl.experiment.build import build_simulator
    from robustfl.experiment.config import load_config

    torch.set_num_threads(1)
    sim = build_simulator(load_config(None, sets))
    sim.step()
    walls, cpus, phases = [], [], []
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        phases.append(sim.step().seconds)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {
        "round": statistics.median(walls),
        "cpu": statistics.median(cpus),
        **{p: statistics.median(s[p] for s in phases) for p in PHASES},
        "degree": float(sim.topology.degrees.double().mean()),
        "gap": sim.topology.spectral_gap,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def speed(args: argparse.Namespace) -> None:
    print(f"gossip on {args.nodes} nodes, LeNet, 2 Byzantine (ALIE), compressor {args.compressor or 'none'}")
    print(
        "| topology | mean degree | spectral gap | rule | "
        + " | ".join(PHASES)
        + " | s/round | CPU s/round | peak RSS MiB |"
    )
    print("|---" * (len(PHASES) + 7) + "|")
    for topology in TOPOLOGIES:
        for rule in RULES:
            sets = speed_sets(args.nodes, topology, rule, args.compressor)
            out = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(sets), "--rounds", str(args.rounds)],
                check=True,
                capture_output=True,
                text=True,
            )
            m = json.loads(out.stdout.strip().splitlines()[-1])
            cells = " | ".join(f"{m[p]:.3f}" for p in PHASES)
            print(
                f"| {topology} | {m['degree']:.1f} | {m['gap']:.4f} | {rule} | {cells} | {m['round']:.3f} | "
                f"{m['cpu']:.3f} | {m['rss_mib']:.0f} |",
                flush=True,
            )


def accuracy_sets(topology: str, rule: str, attacked: bool, rounds: int) -> list[str]:
    clip_count = 1 if topology == "ring" else 2  # at most this many Byzantine neighbours per node
    params = f"topology = '{topology}', rule = '{rule}'" + (
        f", clip_count = {clip_count}" if rule == "clip" else ""
    )
    sets = [
        "model.name=mlp",
        "model.params={hidden = [64]}",
        "workers.n=16",
        "training.batch_size=32",
        "training.lr=0.1",
        f"training.rounds={rounds}",
        "algorithm.name=gossip",
        f"algorithm.params={{{params}}}",
    ]
    if attacked:
        sets += ["workers.f=2", "byzantine.ids=random", "attack.name=sign-flip"]
    return sets


def accuracy(args: argparse.Namespace) -> None:
    import torch

    from robustfl.experiment.build import build_simulator
    from robustfl.experiment.config import load_config

    torch.set_num_threads(1)
    print(f"16 nodes, MLP 784-64-10, embedded MNIST, {args.accuracy_rounds} rounds, lr 0.1, batch 32")
    print("| topology | Byzantine | rule | mean acc | worst acc | consensus distance |")
    print("|---|---|---|---|---|---|")
    for topology in ("ring", "torus", "complete"):
        for attacked in (False, True):
            for rule in ("weighted", "clip"):
                sim = build_simulator(
                    load_config(None, accuracy_sets(topology, rule, attacked, args.accuracy_rounds))
                )
                for _ in range(args.accuracy_rounds):
                    sim.step()
                ev = sim.evaluate()
                byz = "2 (sign-flip)" if attacked else "0"
                print(
                    f"| {topology} | {byz} | {rule} | {ev['test_accuracy']:.3f} | {ev['worst_test_accuracy']:.3f} | "
                    f"{ev['consensus_distance']:.3g} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compressor", default=None, help="e.g. topk (ratio 0.01)")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--accuracy-rounds", type=int, default=150)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child), args.rounds)))
        return
    if args.quick:
        args.nodes, args.rounds, args.accuracy_rounds = 16, 1, 2
        speed(args)
        accuracy(args)
        return
    accuracy(args) if args.accuracy else speed(args)


if __name__ == "__main__":
    main()
