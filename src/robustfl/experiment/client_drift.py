"""Client drift: FedAvg vs FedProx vs SCAFFOLD vs Mime vs MimeLite on a Dirichlet(0.1) split with client
sampling, equal rounds; then the same under Byzantine clients with a robust rule (issue 12; seed 002
"Client drift" and the Mime framework; seed 004 ch. 5 for FedProx's ``mu = 0.001``).

Setup (ours, minutes on a laptop): the embedded MNIST sample split over ``n = 20`` clients by
Dirichlet(0.1) over labels, ``10`` sampled per round, 5 local steps of batch 32 at ``lr = 0.05``, LeNet,
60 rounds. Scenarios: ``clean`` (mean aggregation, no attack) and ``byzantine`` (``f = 2`` of the 20
clients, Byzantine ids drawn at random once, so a cohort holds 0–2 of them; they send ALIE messages for
every uploaded part; the rule is the coordinate-wise trimmed mean with ``f = 2`` trimmed per side, which
serves cohorts of 10). SCAFFOLD's ``client_fraction = 10/20``.
Configs: ``robustfl/configs/client_drift/<algorithm>_<scenario>.toml``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustfl.experiment.config import validate

N, PER_ROUND, F = 20, 10, 2
ALGORITHMS: dict[str, dict[str, Any]] = {
    "fedavg": {"name": "fedavg", "params": {"local_steps": 5}},
    "fedprox": {"name": "fedprox", "params": {"local_steps": 5, "mu": 0.001}},
    "scaffold": {"name": "scaffold", "params": {"local_steps": 5, "client_fraction": PER_ROUND / N}},
    "mime": {"name": "mime", "params": {"local_steps": 5, "beta": 0.9}},
    "mimelite": {"name": "mimelite", "params": {"local_steps": 5, "beta": 0.9}},
}
SCENARIOS: dict[str, dict[str, Any]] = {
    "clean": {"workers": {"n": N, "per_round": PER_ROUND}, "aggregator": {"name": "mean"}},
    "byzantine": {
        "workers": {"n": N, "per_round": PER_ROUND, "f": F},
        "byzantine": {"ids": "random"},
        "aggregator": {"name": "trimmed-mean", "params": {"f": F}},
        "attack": {"name": "alie", "params": {"tau": 1.0}},
    },
}


def client_drift_config(algorithm: str, scenario: str) -> dict[str, Any]:
    """The configuration (a TOML-ready dict) of one run."""
    config: dict[str, Any] = {
        "name": f"{algorithm}_{scenario}",
        "data": {"name": "embedded-mnist", "partition": "dirichlet", "alpha": 0.1},
        "model": {"name": "lenet"},
        "training": {"rounds": 60, "batch_size": 32, "lr": 0.05, "seed": 0, "eval_every": 10},
        "algorithm": ALGORITHMS[algorithm],
        **SCENARIOS[scenario],
    }
    validate(config)
    return config


def config_dir() -> Path:
    """The packaged ``configs/client_drift`` folder."""
    return Path(__file__).resolve().parent.parent / "configs" / "client_drift"


def write_configs(folder: Path) -> list[Path]:
    """Write every ``<algorithm>_<scenario>.toml`` into ``folder``; returns their paths."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for scenario in SCENARIOS:
        for algorithm in ALGORITHMS:
            path = folder / f"{algorithm}_{scenario}.toml"
            header = (
                f"# Client drift, {algorithm} ({scenario}): run with `robustfl run {path.name}`.\n"
                "# Written by robustfl.experiment.client_drift.write_configs (a test keeps them equal).\n\n"
            )
            path.write_text(
                header + tomli_w.dumps(client_drift_config(algorithm, scenario)), encoding="utf-8"
            )
            paths.append(path)
    return paths


def reproduce(
    out: Path,
    *,
    algorithms: list[str] | None = None,
    scenarios: list[str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the grid into ``out/<algorithm>_<scenario>/``; ``out/client_drift.csv`` / ``.md`` hold one row
    per algorithm with its final test accuracy (%) per scenario."""
    from robustfl.experiment.config import ConfigError, load_config
    from robustfl.experiment.sweep import run_many
    from robustfl.experiment.table import write_tables

    algorithms = list(algorithms or ALGORITHMS)
    scenarios = list(scenarios or SCENARIOS)
    for name, chosen, known in (("algorithm", algorithms, ALGORITHMS), ("scenario", scenarios, SCENARIOS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigError(f"unknown {name} {', '.join(unknown)}; choose from: {', '.join(known)}")
    cells = [(a, s) for s in scenarios for a in algorithms]
    configs = [load_config(config_dir() / f"{a}_{s}.toml", list(overrides)) for a, s in cells]
    summaries = run_many(configs, [out / f"{a}_{s}" for a, s in cells], workers=workers, on_done=on_done)
    rows: dict[str, dict[str, Any]] = {}
    for (a, s), summary in zip(cells, summaries, strict=True):
        acc = summary.get("final", {}).get("test_accuracy")
        text = "div" if summary.get("diverged") or acc is None else f"{100 * float(acc):.1f}"
        rows.setdefault(a, {"algorithm": a})[s] = text
    table = list(rows.values())
    write_tables(table, ["algorithm", *scenarios], out / "client_drift")
    return table
