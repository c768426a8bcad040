"""Personalisation on a Dirichlet(0.1) split: the FedAvg global model vs local fine-tuning vs weighted
gradient averaging with and without bias correction, each client's accuracy on its own held-out data
reported as the mean and the worst 10% (issue 12; M. Jaggi's talk "Learning with strange gradients",
Chayti et al., arXiv:2111.05968).

Setup (ours, minutes on a laptop): the embedded MNIST sample split over ``n = 20`` clients by
Dirichlet(0.1) over labels, a quarter of each client's partition held out as its test split
(``data.client_test_fraction = 0.25``); FedAvg with every client every round, 5 local steps of batch 32
at ``lr = 0.05``, LeNet, 60 rounds. Then each client personalises from the final global model with 20
SGD steps of batch 32 at ``lr = 0.05`` on its own training split: ``finetune`` alone, ``weighted``
(``alpha = 0.5``, bias correction ``beta = 0.1``) or ``weighted-plain`` (``alpha = 0.5``, no correction);
in both weighted rows each of the 20 clients contributes 4 samples of its minibatch to the clients'
mean gradient of a step (80 samples: a step costs 3.5 fine-tuning steps instead of 21).
Configs: ``robustfl/configs/personalise/<method>.toml``; they differ only in ``[personalise]``, so
:func:`reproduce` trains once per seed (with the first method's config) and evaluates the other methods
from that run's final checkpoint: every row personalises the same global model.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustfl.experiment.config import validate

METHODS: dict[str, dict[str, Any]] = {
    "finetune": {"method": "finetune"},
    "weighted": {
        "method": "weighted",
        "alpha": 0.5,
        "correction": True,
        "beta": 0.1,
        "collaborator_batch_size": 4,
    },
    "weighted-plain": {"method": "weighted", "alpha": 0.5, "correction": False, "collaborator_batch_size": 4},
}
ROWS = ("global", *METHODS)


def personalise_config(method: str) -> dict[str, Any]:
    """The configuration (a TOML-ready dict) of one method."""
    config: dict[str, Any] = {
        "name": f"personalise_{method}",
        "data": {
            "name": "embedded-mnist",
            "partition": "dirichlet",
            "alpha": 0.1,
            "client_test_fraction": 0.25,
        },
        "model": {"name": "lenet"},
        "training": {"rounds": 60, "batch_size": 32, "lr": 0.05, "seed": 0, "eval_every": 10},
        "algorithm": {"name": "fedavg", "params": {"local_steps": 5}},
        "workers": {"n": 20},
        "aggregator": {"name": "mean"},
        "personalise": {"steps": 20, "lr": 0.05, "batch_size": 32, **METHODS[method]},
    }
    validate(config)
    return config


def config_dir() -> Path:
    """The packaged ``configs/personalise`` folder."""
    return Path(__file__).resolve().parent.parent / "configs" / "personalise"


def write_configs(folder: Path) -> list[Path]:
    """Write every ``<method>.toml`` into ``folder``; returns their paths."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for method in METHODS:
        path = folder / f"{method}.toml"
        header = (
            f"# Personalisation, {method}: run with `robustfl run {path.name}`.\n"
            "# Written by robustfl.experiment.personalise_runs.write_configs (a test keeps them equal).\n\n"
        )
        path.write_text(header + tomli_w.dumps(personalise_config(method)), encoding="utf-8")
        paths.append(path)
    return paths


def _personalise_from(config: Any, run_dir: Path) -> dict[str, float]:
    """``config``'s per-client metrics on the final checkpoint of the run in ``run_dir`` (a run of a
    config that differs from ``config`` only in ``[personalise]``)."""
    from robustfl.experiment.build import build_run
    from robustfl.experiment.rundir import RunDir

    run = build_run(config)
    run.load_state_dict(RunDir(run_dir).load_checkpoint()["simulator"])
    metrics: dict[str, float] = run.clients.evaluate(run.sim)
    return metrics


def personalise_from(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, float]:
    """Personalise the final global model of the finished run in ``run_dir`` again, with its stored
    config changed by ``overrides`` (e.g. ``["personalise.alpha=0.75"]``); returns the per-client metrics."""
    from robustfl.experiment.config import load_config

    return _personalise_from(load_config(Path(run_dir) / "config.toml", list(overrides)), Path(run_dir))


def _cell(values: list[float]) -> str:
    """Percent, as ``mean ± std`` over seeds when there are several."""
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.1f}"
    return f"{statistics.mean(pct):.1f} ± {statistics.stdev(pct):.1f}"


def reproduce(
    out: Path,
    *,
    methods: list[str] | None = None,
    seeds: list[int] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train once per seed into ``out/seed<s>/`` and personalise with every method; ``out/personalise.json``
    holds the per-seed metrics, ``out/personalise.csv`` / ``.md`` one row per model (``global`` = FedAvg's
    model) with the per-client accuracy mean and worst 10% (%; mean ± std over seeds)."""
    from robustfl.experiment.config import ConfigError, load_config
    from robustfl.experiment.runner import run
    from robustfl.experiment.table import write_tables

    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
    seeds = list(seeds or [0])
    results: dict[str, dict[str, dict[str, float]]] = {}
    for seed in seeds:
        configs = {
            m: load_config(config_dir() / f"{m}.toml", [*overrides, f"training.seed={seed}"]) for m in methods
        }
        run_dir = out / f"seed{seed}"
        summary = run(configs[methods[0]], run_dir, quiet=True, notify=None)
        final = summary["final"]
        per_seed = {
            "global": {"mean": final["client_accuracy_mean"], "worst10": final["client_accuracy_worst10"]}
        }
        per_seed["global"]["test_accuracy"] = final["test_accuracy"]
        for m in methods:
            metrics = final if m == methods[0] else _personalise_from(configs[m], run_dir)
            per_seed[m] = {
                "mean": metrics["personal_accuracy_mean"],
                "worst10": metrics["personal_accuracy_worst10"],
            }
        results[str(seed)] = per_seed
        if on_done is not None:
            on_done(summary)
    (out / "personalise.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    rows = [
        {
            "model": name,
            "mean %": _cell([results[str(s)][name]["mean"] for s in seeds]),
            "worst 10% %": _cell([results[str(s)][name]["worst10"] for s in seeds]),
        }
        for name in ("global", *methods)
    ]
    write_tables(rows, ["model", "mean %", "worst 10% %"], out / "personalise")
    return rows
