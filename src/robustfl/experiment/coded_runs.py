"""``robustfl reproduce detox`` and ``robustfl reproduce draco``: coded robustness against robust rules.

**DETOX** (Rajput, Wang, Charles and Papailiopoulos, NeurIPS 2019; seed ch. 7, Table 7.1): P workers in
groups of r = 3 computing the same minibatch, a majority vote per group, then a hierarchical robust rule
(D-Multi-Krum, D-Bulyan, D-Median) against the plain rule on all P gradients, under ALIE; and signSGD
(``sgd`` with the ``sign-majority`` aggregator: the server steps along the sign of the coordinate-wise
majority vote of the workers' signs) with and without DETOX (``detox-signsgd``: majority vote in both
stages) under the reverse-gradient attack ``-c g`` (``bit-flip`` with ``scale = c``) and the constant
attack. Reported: final test accuracy and the server's aggregation (plain) or decode (coded) seconds per
round.

**DRACO** (Chen, Wang, Charles and Papailiopoulos, ICML 2018; seed ch. 6, Tables 6.2–6.7): the repetition
code (r = 2s + 1) and the cyclic code against the geometric median of the P gradients, under the constant
and reverse-gradient attacks with s adversaries re-drawn every round (``[byzantine] ids = "random",
resample = true``). A round on the modelled cluster (``robustfl.commtime``) costs

    compute  = r x (measured gradient seconds of the P partitions) / P + encode seconds / P
    network  = cluster.communication("ps", exact bits per worker)   (cyclic messages: 2d float64)
    decode   = measured decode seconds (the server), aggregate = measured robust-rule seconds (the server)

The simulator computes each data partition once (the code's workers compute identical gradients), so the
redundancy ``r`` multiplies the measured compute to charge each worker its r gradients; this is our
reading of the chapter's "computational overhead r". Time-to-accuracy ratios are GM's simulated time to a
test accuracy over the coded scheme's.

Defaults: the embedded MNIST sample, the ``mlp`` model, plain SGD (no worker momentum: coded runs refuse it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustfl.commtime import Cluster, Timeline, cluster, speedup
from robustfl.experiment.config import ExperimentConfig, validate
from robustfl.experiment.timed_runs import fit_cluster

#: DETOX rows: label -> (aggregator table, coding table or None, attack table). ``f`` is filled in.
DETOX_ALIE: dict[str, tuple[str, str | None]] = {
    "multi-krum": ("multi-krum", None),
    "d-multi-krum": ("mean", "detox-multi-krum"),
    "bulyan": ("bulyan", None),
    "d-bulyan": ("mean", "detox-bulyan"),
    "median": ("median", None),
    "d-median": ("mean", "detox-median"),
}
SIGN_ATTACKS: dict[str, dict[str, Any]] = {
    "reverse-gradient": {"name": "bit-flip", "params": {"scale": 100.0}},
    "constant": {"name": "constant", "params": {"value": 100.0}},
}
DRACO_METHODS = ("gm", "repetition", "cyclic")
DRACO_TARGETS = (0.6, 0.7, 0.8)


def _base(
    workers: int, f: int, rounds: int, lr: float, seed: int, data_dir: str | Path | None = None
) -> dict[str, Any]:
    """The common config; with ``data_dir`` the chapters' setting: ResNet-18 on the CIFAR-10 files there."""
    cifar = data_dir is not None
    return {
        "data": {"name": "cifar10", "data_dir": str(data_dir), "partition": "iid"}
        if cifar
        else {"name": "embedded-mnist", "partition": "iid"},
        "model": {"name": "resnet18" if cifar else "mlp"},
        "workers": {"n": workers, "f": f},
        "training": {
            "algorithm": "sgd",
            "rounds": rounds,
            "batch_size": 16,
            "lr": lr,
            "seed": seed,
            "eval_every": max(rounds // 10, 1),
        },
    }


def _detox_params(code: str, workers: int, seed: int) -> dict[str, Any]:
    """r = 3; the inner rule's ``f`` is §7.6.5's largest that its vote group admits (Multi-Krum:
    n >= 2f + 3 on the smaller of 2 groups; Bulyan: n >= 4f + 3 on all votes), not ``workers.f``:
    after the vote few Byzantine votes remain (the chapter's analysis)."""
    params: dict[str, Any] = {"r": 3, "seed": seed}
    votes = workers // 3
    if code == "detox-multi-krum":
        params["f"] = max((votes // 2 - 3) // 2, 0)
    elif code == "detox-bulyan":
        params["f"] = max((votes - 3) // 4, 0)
    return params


def detox_configs(
    rounds: int = 100, workers: int = 45, f: int = 5, seed: int = 0, data_dir: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """Every DETOX row as a config (label ``rule/attack``): ALIE against the three rules ± DETOX, and
    signSGD ± DETOX under the reverse-gradient and constant attacks. Adversaries are drawn at random
    once (DETOX's fixed adversaries); the coded rows use groups of r = 3 (§7.6)."""
    out: dict[str, dict[str, Any]] = {}
    for label, (agg, code) in DETOX_ALIE.items():
        config = _base(workers, f, rounds, 0.1, seed, data_dir) | {"name": f"{label}/alie"}
        config["attack"] = {"name": "alie"}
        config["byzantine"] = {"ids": "random"}
        params = {"f": f} if agg in ("multi-krum", "bulyan") else {}
        config["aggregator"] = {"name": agg, "params": params}
        if code is not None:
            config["coding"] = {"name": code, "params": _detox_params(code, workers, seed)}
        out[config["name"]] = config
    for attack, table in SIGN_ATTACKS.items():
        for label, code in (("signsgd", None), ("d-signsgd", "detox-signsgd")):
            config = _base(workers, f, rounds, 0.01, seed, data_dir) | {"name": f"{label}/{attack}"}
            config["attack"] = table
            config["byzantine"] = {"ids": "random"}
            config["aggregator"] = {"name": "sign-majority" if code is None else "mean"}
            if code is not None:
                config["coding"] = {"name": code, "params": {"r": 3, "seed": seed}}
            out[config["name"]] = config
    return out


def draco_configs(
    rounds: int = 100, workers: int = 15, s: int = 2, seed: int = 0, data_dir: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """Every DRACO cell (label ``method/attack``): GM, the repetition code and the cyclic code with
    ``s`` adversaries re-drawn every round, under the constant and reverse-gradient attacks."""
    out: dict[str, dict[str, Any]] = {}
    for attack, table in SIGN_ATTACKS.items():
        for method in DRACO_METHODS:
            config = _base(workers, s, rounds, 0.1, seed, data_dir) | {"name": f"{method}/{attack}"}
            config["attack"] = table
            config["byzantine"] = {"ids": "random", "resample": True}
            config["aggregator"] = {"name": "geometric-median" if method == "gm" else "mean"}
            if method != "gm":
                config["coding"] = {"name": f"draco-{method}", "params": {"s": s}}
            out[config["name"]] = config
    return out


@dataclass
class CodedRun:
    """A finished run laid on a modelled cluster, with its per-round cost split (means, seconds)."""

    name: str
    timeline: Timeline
    final_accuracy: float
    redundancy: float
    compute: float
    encode: float
    communication: float
    decode: float
    aggregate: float
    bits_per_worker: float
    accuracies: list[tuple[int, float]] = field(default_factory=list)

    @property
    def server(self) -> float:
        """The server's seconds per round: decoding plus the robust rule."""
        return self.decode + self.aggregate

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "timeline"}
        out["simulated_seconds"] = self.timeline.times[-1] if self.timeline.times else 0.0
        return out


def coded_run(config: ExperimentConfig, net: Cluster) -> CodedRun:
    """Train ``config`` and lay each round on ``net`` (parameter server) as the module docstring says."""
    from robustfl.experiment.build import build_run

    run = build_run(config)
    m = config.workers.n
    timeline = Timeline(fit_cluster(net, m), "ps")
    eval_every = config.training.eval_every
    rounds = config.training.rounds
    sums = dict.fromkeys(("compute", "encode", "decode", "aggregate", "bits"), 0.0)
    redundancy = 1.0
    accuracies: list[tuple[int, float]] = []
    for r in range(rounds):
        start = time.perf_counter()
        stats = run.step()
        s = stats.seconds
        extra = max(time.perf_counter() - start - sum(s.values()), 0.0)
        encode = float(stats.metrics.get("encode_seconds", 0.0))
        redundancy = float(stats.metrics.get("redundancy", 1.0))
        worker = redundancy * (s.get("compute", 0.0) - encode) / m + encode / m
        aggregate = s.get("aggregate", 0.0) + s.get("update", 0.0) + extra
        decode = s.get("decode", 0.0)
        acc = None
        if (r + 1) % eval_every == 0 or r + 1 == rounds:
            acc = float(run.evaluate()["test_accuracy"])
            accuracies.append((r + 1, acc))
        timeline.step(worker + decode + aggregate, stats.bits_up / m, stats.bits_down / m, accuracy=acc)
        for key, value in (("compute", worker), ("encode", encode / m), ("decode", decode)):
            sums[key] += value
        sums["aggregate"] += aggregate
        sums["bits"] += stats.bits_up / m
    comm = sum(timeline.communication) / rounds
    return CodedRun(
        config.name,
        timeline,
        accuracies[-1][1],
        redundancy,
        sums["compute"] / rounds,
        sums["encode"] / rounds,
        comm,
        sums["decode"] / rounds,
        sums["aggregate"] / rounds,
        sums["bits"] / rounds,
        accuracies,
    )


def _run_all(
    configs: dict[str, dict[str, Any]],
    only: Sequence[str] | None,
    net: Cluster,
    on_done: Callable[[str], None] | None,
) -> dict[str, CodedRun]:
    unknown = [k for k in only or () if k not in configs]
    if unknown:
        raise ValueError(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(configs)}")
    runs: dict[str, CodedRun] = {}
    for name, raw in configs.items():
        if only and name not in only:
            continue
        runs[name] = coded_run(validate(raw), net)
        if on_done is not None:
            on_done(name)
    return runs


def reproduce_detox(
    out_dir: str | Path,
    rounds: int = 100,
    workers: int = 45,
    f: int = 5,
    seed: int = 0,
    only: Sequence[str] | None = None,
    on_done: Callable[[str], None] | None = None,
    data_dir: str | Path | None = None,
) -> dict[str, CodedRun]:
    """Run the DETOX rows; write ``detox.md`` and ``detox.json`` into ``out_dir``."""
    configs = detox_configs(rounds, workers, f, seed, data_dir)
    net = cluster("g2.2xlarge-16")
    runs = _run_all(configs, only, net, on_done)
    lines = [
        "| rule / attack | final test acc | server s / round (aggregate + decode) | redundancy |",
        "|---|---|---|---|",
    ]
    for name, run in runs.items():
        lines.append(
            f"| {name} | {run.final_accuracy:.3f} | {run.server:.4f} "
            f"({run.aggregate:.4f} + {run.decode:.4f}) | {run.redundancy:g} |"
        )
    _write(out_dir, "detox", "\n".join(lines) + "\n", configs, runs, net)
    return runs


def reproduce_draco(
    out_dir: str | Path,
    rounds: int = 100,
    workers: int = 15,
    s: int = 2,
    seed: int = 0,
    targets: Sequence[float] = DRACO_TARGETS,
    net: Cluster | None = None,
    only: Sequence[str] | None = None,
    on_done: Callable[[str], None] | None = None,
    data_dir: str | Path | None = None,
) -> dict[str, CodedRun]:
    """Run the DRACO cells; write ``draco.md`` (speed-ups over GM, cost split) and ``draco.json``."""
    for t in targets:
        if not 0 < t <= 1:
            raise ValueError(f"targets must be accuracies in (0, 1], got {t!r}")
    configs = draco_configs(rounds, workers, s, seed, data_dir)
    net = net or cluster("g2.2xlarge-16")
    runs = _run_all(configs, only, net, on_done)
    shown = "/".join(f"{100 * t:g}" for t in targets)
    lines = [
        f"| method / attack | final acc | speed-up over GM to {shown}% | compute | encode | "
        "communication | decode | aggregate | kbit / worker |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        gm = runs.get("gm/" + name.split("/", 1)[1])
        ups = [None if gm is None else speedup(gm.timeline, run.timeline, t) for t in targets]
        cells = " / ".join("N/A" if u is None else f"{u:.2f}x" for u in ups)
        lines.append(
            f"| {name} | {run.final_accuracy:.3f} | {cells} | {run.compute:.4f} | {run.encode:.4f} | "
            f"{run.communication:.4f} | {run.decode:.4f} | {run.aggregate:.4f} | "
            f"{run.bits_per_worker / 1e3:.1f} |"
        )
    _write(out_dir, "draco", "\n".join(lines) + "\n", configs, runs, net)
    return runs


def _write(
    out_dir: str | Path,
    stem: str,
    table: str,
    configs: dict[str, dict[str, Any]],
    runs: dict[str, CodedRun],
    net: Cluster,
) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(table, encoding="utf-8")
    record = {
        "cluster": vars(net),
        "configs": {k: configs[k] for k in runs},
        "runs": {k: r.summary() for k, r in runs.items()},
    }
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def config_folder() -> Path:
    """The packaged ``configs/coding`` folder (every row of both reproductions as a TOML file)."""
    return Path(__file__).resolve().parent.parent / "configs" / "coding"


def write_configs(folder: str | Path) -> list[Path]:
    """Write every DETOX and DRACO row (default sizes, 100 rounds) as ``<study>_<rule>_<attack>.toml``."""
    import tomli_w

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for study, configs in (("detox", detox_configs()), ("draco", draco_configs())):
        for name, config in configs.items():
            path = out / f"{study}_{name.replace('/', '_')}.toml"
            header = (
                f"# `robustfl reproduce {study}` row {name}: run alone with `robustfl run {path.name}`.\n"
                "# Written by robustfl.experiment.coded_runs.write_configs (a test keeps them equal).\n\n"
            )
            named = config | {"name": f"{study}-{name.replace('/', '-')}"}
            path.write_text(header + tomli_w.dumps(named), encoding="utf-8")
            paths.append(path)
    return paths
