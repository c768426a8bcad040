"""``robustfl reproduce pufferfish``: Table 4.8's ablation and PUFFERFISH + PowerSGD on a modelled cluster.

Wang, Agarwal and Papailiopoulos, "PUFFERFISH: Communication-efficient Models At No Extra Cost" (MLSys
2021), Table 4.8 (ResNet-18 / CIFAR-10): the low-rank network (every layer but the last factorised)
93.75%, the hybrid without vanilla warm-up 93.92%, the hybrid with warm-up 94.87%. We run the same
variants, plus the vanilla network and PowerSGD (Vogels et al., NeurIPS 2019; rank 2 with error
feedback) on the vanilla and on the PUFFERFISH network, with one seed, data and recipe, and report
parameters, MACs per sample, exact bits per worker and round, the measured compute per round and per
epoch, and the modelled round time on the chapter's 8 p3.2xlarge nodes (10 Gbit/s assumed, ring
all-reduce; ``experiment.timed_runs``).

Default (laptop-quick): the MLP 784-200-200-10 on the embedded MNIST sample (weight layers fc1, fc2,
fc3: the low-rank network factorises fc1 and fc2, the hybrid, K = 2, fc2 only), 8 workers, plain SGD
with momentum 0.9, lr 0.1, batch 32 per worker, 150 rounds (about 9.6 epochs of the 4,000 images),
warm-up 30 rounds (a fifth of training). ``model="lenet"`` runs LeNet-5 instead (K = 2 keeps conv1
full: at rank ratio 0.25 its 6 x 25 kernel matrix would keep rank 1). Our choice for PUFFERFISH +
PowerSGD: PowerSGD compresses every round (the chapter applies it during warm-up, rank 4).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustfl.commtime import Cluster, cluster
from robustfl.experiment.config import validate
from robustfl.experiment.timed_runs import TimedRun, timed_run

POWERSGD = {"name": "powersgd", "params": {"rank": 2}, "error_feedback": True}

#: Table 4.8's test accuracy % (ResNet-18 / CIFAR-10, mean of 3 seeds).
ANCHORS = {"low-rank": 93.75, "hybrid (wo. warm-up)": 93.92, "hybrid (w. warm-up)": 94.87}


def variants(k: int, warmup: int) -> dict[str, dict[str, Any]]:
    """label -> ``{"low_rank": [model.low_rank] or None, "compressor": [compressor] or None}``."""
    hybrid = {"first_low_rank": k, "rank_ratio": 0.25}
    return {
        "vanilla": {"low_rank": None, "compressor": None},
        "low-rank": {"low_rank": {"first_low_rank": 1, "rank_ratio": 0.25}, "compressor": None},
        "hybrid (wo. warm-up)": {"low_rank": hybrid, "compressor": None},
        "hybrid (w. warm-up)": {"low_rank": hybrid | {"warmup_rounds": warmup}, "compressor": None},
        "vanilla + PowerSGD": {"low_rank": None, "compressor": POWERSGD},
        "PUFFERFISH + PowerSGD": {"low_rank": hybrid | {"warmup_rounds": warmup}, "compressor": POWERSGD},
    }


MODELS: dict[str, dict[str, Any]] = {
    "mlp": {"name": "mlp", "params": {"hidden": [200, 200]}},
    "lenet": {"name": "lenet"},
}


def base_config(rounds: int = 150, model: str = "mlp") -> dict[str, Any]:
    """The shared run of every variant (``model``: ``mlp`` or ``lenet``)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    return {
        "data": {"name": "embedded-mnist", "partition": "iid"},
        "model": dict(MODELS[model]),
        "workers": {"n": 8},
        "training": {
            "algorithm": "sgd",
            "rounds": rounds,
            "batch_size": 32,
            "lr": 0.1,
            "momentum": 0.9,
            "eval_every": 10,
        },
    }


def variant_config(label: str, spec: dict[str, Any], base: dict[str, Any], seed: int) -> dict[str, Any]:
    config = {**base, "name": label, "training": dict(base["training"], seed=seed)}
    config["model"] = dict(base["model"])
    if spec["low_rank"] is not None:
        config["model"]["low_rank"] = spec["low_rank"]
    if spec["compressor"] is not None:
        config["compressor"] = spec["compressor"]
    return config


def macs_per_sample(run: TimedRun, config: dict[str, Any]) -> int:
    """MACs of one forward pass of the run's final network on one training sample."""
    from robustfl.data import load_dataset
    from robustfl.experiment.build import build_run
    from robustfl.models.macs import count_macs

    built = build_run(validate(config))
    if built.switch is not None and built.switch.round > 0:
        built.switch.apply(built.sim)
    ds = load_dataset(config["data"]["name"])
    return count_macs(built.sim.model, ds.x_train[:1])


def reproduce(
    out_dir: str | Path,
    rounds: int = 150,
    warmup: int = 30,
    k: int = 2,
    only: Sequence[str] | None = None,
    net: Cluster | None = None,
    seed: int = 0,
    base: dict[str, Any] | None = None,
    on_done: Callable[[str], None] | None = None,
    model: str = "mlp",
) -> dict[str, dict[str, Any]]:
    """Run the variants (``only``: a subset of labels), write ``pufferfish.md`` / ``pufferfish.json``."""
    if not 0 < warmup < rounds:
        raise ValueError(f"warmup must be between 1 and rounds - 1 = {rounds - 1}, got {warmup!r}")
    table = variants(k, warmup)
    unknown = [v for v in only or [] if v not in table]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; choose from: {', '.join(table)}")
    net = net or cluster("p3.2xlarge-8")
    base = base if base is not None else base_config(rounds, model)
    base = {**base, "training": dict(base["training"], rounds=rounds)}
    samples = None
    out: dict[str, dict[str, Any]] = {}
    for label, spec in table.items():
        if only and label not in only:
            continue
        config = variant_config(label, spec, base, seed)
        run = timed_run(validate(config), net, "allreduce", eval_every=base["training"].get("eval_every", 10))
        if samples is None:
            from robustfl.data import load_dataset

            samples = int(load_dataset(base["data"]["name"]).y_train.numel())
        workers = base["workers"]["n"]
        batch = base["training"]["batch_size"]
        rounds_per_epoch = samples / (workers * batch)
        out[label] = run.summary() | {
            "macs": macs_per_sample(run, config),
            "compute_per_epoch": run.compute_per_round * rounds_per_epoch,
            "simulated_per_epoch": run.seconds_per_round * rounds_per_epoch,
        }
        if on_done is not None:
            on_done(label)
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "pufferfish.md").write_text(table_markdown(out), encoding="utf-8")
    (path / "pufferfish.json").write_text(
        json.dumps({"cluster": vars(net), "base": base, "k": k, "warmup": warmup, "runs": out}, indent=1),
        encoding="utf-8",
    )
    return out


def table_markdown(rows: dict[str, dict[str, Any]]) -> str:
    head = (
        "| variant | params | MACs / sample | kbit / worker / round | compute s / epoch | "
        "modelled s / epoch (8 x p3.2xlarge) | final acc | best acc | Table 4.8 (ResNet-18) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, r in rows.items():
        anchor = ANCHORS.get(label)
        lines.append(
            f"| {label} | {r['parameters']:,} | {r['macs']:,} | {r['bits_per_worker'] / 1e3:.1f} | "
            f"{r['compute_per_epoch']:.3f} | {r['simulated_per_epoch']:.3f} | {r['final_accuracy']:.3f} | "
            f"{r['best_accuracy']:.3f} | {'' if anchor is None else f'{anchor:.2f}%'} |"
        )
    return "\n".join(lines) + "\n"
