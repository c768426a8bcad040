"""Threads: the run default (1 thread for small models) against torch's default (one per core).

    PYTHONPATH=src python benchmarks/threads.py            # 30-round runs, 3 repeats (about a minute)
    PYTHONPATH=src python benchmarks/threads.py --quick    # smoke test (seconds)

1. One run of ``configs/demo.toml`` (MLP, embedded MNIST, 10 workers, 2 bit-flip attackers) with each
   aggregator of the demo, at 1 thread and at ``cores`` threads, alternating, in this process; the
   median of the run's own ``wall_seconds`` (training and evaluation, no start-up) per setting.
2. The same with LeNet (``model.name = lenet``): a heavier model, the case where threads may pay.

Prints seconds per setting and the ratio (cores threads) / (1 thread): above 1 means one thread is faster.
Sweeps: ``--workers K`` runs give each run ``cores / K`` threads for large models and 1 for small ones,
so K workers never oversubscribe the cores (:mod:`robustfl.experiment.threads`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from robustfl.experiment.config import AggregatorConfig, load_config
from robustfl.experiment.demo import RULES, demo_config_path
from robustfl.experiment.runner import run
from robustfl.experiment.threads import available_cores


def timed(model: str, rule: dict[str, object], threads: int, rounds: int, out: Path) -> float:
    cfg = load_config(demo_config_path(), [f"training.rounds={rounds}", f"model.name={model}"])
    cfg.aggregator = AggregatorConfig.model_validate(rule)
    summary = run(cfg, out, quiet=True, threads=threads, notify=None)
    return float(summary["wall_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, repeats = (3, 1) if args.quick else (30, 3)
    cores = available_cores()
    before = torch.get_num_threads()
    print(f"cores: {cores}; torch default threads: {before}; {rounds} rounds, median of {repeats}")
    print(f"{'model':6} {'rule':24} {'1 thread s':>11} {f'{cores} threads s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("mlp", "lenet"):
            for label, rule in RULES.items():
                seconds: dict[int, list[float]] = {1: [], cores: []}
                for i in range(repeats):
                    for threads in seconds:
                        out = Path(tmp) / f"{model}-{rule['name']}-{threads}-{i}"
                        seconds[threads].append(timed(model, rule, threads, rounds, out))
                one, many = (statistics.median(seconds[t]) for t in (1, cores))
                print(f"{model:6} {label:24} {one:11.2f} {many:12.2f} {many / one:6.2f}")
    torch.set_num_threads(before)


if __name__ == "__main__":
    main()
