"""``robustfl reproduce atomo``: vanilla SGD vs spectral-ATOMO vs QSGD vs TernGrad, timed on a modelled cluster.

Wang, Sievert, Charles, Liu, Wright and Papailiopoulos, "ATOMO: Communication-efficient Learning via
Atomic Sparsification" (NeurIPS 2018), §5 (seed 004 §3.5): distributed SGD on 16 workers and a
parameter server; each worker codes its gradient layer by layer with spectral-ATOMO of sparsity budget
``s`` (conv kernels as ``[xy/2, 2k^2]``), ``b``-bit QSGD (one bucket per layer, Elias-coded), TernGrad
(one scale per layer) or sends float32 (vanilla). Tables 3.3–3.4 give each method's speed-up over vanilla
SGD in wall-clock time to reach a test accuracy. We run every method with the same seed, data and
hyper-parameters, measure each round's compute and coding time, count its exact bits and model the
network with ``robustfl.commtime`` (``g2.2xlarge-16``: 1 Gbit/s assumed, 100 µs; see
``experiment.timed_runs`` for the round's cost). Default: ``lenet`` on the embedded MNIST sample, plain
SGD with worker momentum 0.9 (lr 0.1, batch 16 per worker, 150 rounds); with ``--data-dir``: ResNet-18 on CIFAR-10 (SVHN has
no loader here).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustfl.commtime import Cluster, cluster
from robustfl.experiment.config import validate
from robustfl.experiment.timed_runs import TimedRun, network_speedups, rounds_to, speedups, timed_run

#: method label -> the ``[compressor]`` table (``None``: uncompressed float32).
METHODS: dict[str, dict[str, Any] | None] = {
    "vanilla": None,
    **{f"atomo-s{s}": {"name": "spectral-atomo", "params": {"budget": float(s)}} for s in (1, 2, 3, 4)},
    **{f"qsgd-b{b}": {"name": "qsgd-layers", "params": {"bits": b}} for b in (1, 2, 4, 8)},
    "terngrad": {"name": "terngrad-layers", "params": {}},
}

TARGETS = (0.60, 0.70, 0.80, 0.90)


def base_config(data_dir: str | Path | None = None) -> dict[str, Any]:
    """The shared run: embedded MNIST + LeNet by default, CIFAR-10 + ResNet-18 with ``data_dir``."""
    config: dict[str, Any] = {
        "data": {"name": "embedded-mnist", "partition": "iid"},
        "model": {"name": "lenet"},
        "workers": {"n": 16},
        "training": {
            "algorithm": "sgd",
            "rounds": 150,
            "batch_size": 16,
            "lr": 0.1,
            "momentum": 0.9,
            "eval_every": 10,
        },
    }
    if data_dir is not None:
        config["data"] = {"name": "cifar10", "data_dir": str(data_dir), "partition": "iid"}
        config["model"] = {"name": "resnet18"}
        config["training"] |= {"batch_size": 8, "lr": 0.1, "rounds": 2000}
        config["training"]["augment"] = {"crop_padding": 4, "flip": True}
    return config


def method_config(method: str, base: dict[str, Any], rounds: int | None, seed: int) -> dict[str, Any]:
    """``base`` with ``method``'s compressor, ``rounds`` and ``seed``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    config = {**base, "name": method, "training": dict(base["training"], seed=seed)}
    if rounds is not None:
        config["training"]["rounds"] = rounds
    compressor = METHODS[method]
    if compressor is not None:
        config["compressor"] = compressor
    return config


def reproduce(
    out_dir: str | Path,
    methods: Sequence[str] | None = None,
    rounds: int | None = None,
    data_dir: str | Path | None = None,
    targets: Sequence[float] = TARGETS,
    net: Cluster | None = None,
    seed: int = 0,
    base: dict[str, Any] | None = None,
    on_done: Callable[[str], None] | None = None,
) -> dict[str, TimedRun]:
    """Run the methods (vanilla first: it is the baseline), write ``atomo.md`` / ``atomo.json``.

    ``base`` replaces :func:`base_config` (the run every method shares, before its compressor)."""
    chosen = list(dict.fromkeys(["vanilla", *(methods or METHODS)]))
    for t in targets:
        if not 0 < t <= 1:
            raise ValueError(f"targets must be accuracies in (0, 1], got {t!r}")
    net = net or cluster("g2.2xlarge-16")
    base = base if base is not None else base_config(data_dir)
    runs: dict[str, TimedRun] = {}
    for method in chosen:
        config = validate(method_config(method, base, rounds, seed))
        runs[method] = timed_run(config, net, "ps", eval_every=config.training.eval_every)
        if on_done is not None:
            on_done(method)
    ups = speedups(runs, "vanilla", tuple(targets))
    net_ups = network_speedups(runs, "vanilla", tuple(targets))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "atomo.md").write_text(table_markdown(runs, ups, tuple(targets), net_ups), encoding="utf-8")
    record = {
        "cluster": vars(net),
        "base": base,
        "rounds": rounds,
        "runs": {
            k: r.summary() | {"time_to": {str(t): r.timeline.time_to(t) for t in targets}}
            for k, r in runs.items()
        },
    }
    (out / "atomo.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return runs


def _cells(values: dict[float, float | None], targets: tuple[float, ...]) -> str:
    return " / ".join("N/A" if values[t] is None else f"{values[t]:.2f}x" for t in targets)


def table_markdown(
    runs: dict[str, TimedRun],
    ups: dict[str, dict[float, float | None]],
    targets: tuple[float, ...],
    net_ups: dict[str, dict[float, float | None]] | None = None,
) -> str:
    """Per method: bits per worker and round, modelled seconds per round (compute + network), final
    accuracy, rounds to each target, and the speed-up over vanilla to each target (``N/A``: not
    reached) with measured compute, and with the modelled network alone (``net_ups``)."""
    shown = "/".join(f"{100 * t:g}" for t in targets)
    head = (
        "| method | kbit / worker / round | s / round (compute + network) | final acc | "
        f"rounds to {shown}% | speed-up to {shown}% | network-only speed-up |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in runs.items():
        reach = " / ".join(str(rounds_to(r, t) or "N/A") for t in targets)
        net = _cells(net_ups[name], targets) if net_ups is not None else ""
        lines.append(
            f"| {name} | {r.bits_per_worker / 1e3:.1f} | {r.seconds_per_round:.4f} "
            f"({r.compute_per_round:.4f} + {r.network_per_round:.4f}) | {r.final_accuracy:.3f} | "
            f"{reach} | {_cells(ups[name], targets)} | {net} |"
        )
    return "\n".join(lines) + "\n"
