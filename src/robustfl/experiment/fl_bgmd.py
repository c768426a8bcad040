"""FL-BGMD vs FedAvg + GM vs FedAvg-mean under seed 000's corruptions (issue 12; Acharya et al.,
AISTATS 2022, Alg. 3 and the corruption settings of its Table 2).

Setup (ours, minutes): the embedded MNIST sample, i.i.d. split over 10 workers, LeNet, batch 32,
``lr = 0.05``, a synchronisation every 5 local steps (``fl-bgmd`` with ``sync_every = 5``; FedAvg with
``local_steps = 5``), 40 rounds, seed 0. Methods: FL-BGMD = ``fl-bgmd`` + the ``bgmd`` rule at
``k = 10%`` of ``d`` (server error feedback, Alg. 2 blocks); FedAvg + GM = FedAvg + the geometric median;
FedAvg-mean. Corruptions (as ``bgmd_table2``): clean; bit flip 20% (``-100 x`` own message); additive 20%
(``+ N(0, 10^2)``). Every run uploads the same bits (no compressor): what differs is the server's cost
(GM on ``k`` coordinates vs ``d``) and robustness. Configs: ``robustfl/configs/fl_bgmd/<method>_<corruption>.toml``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustfl.experiment.config import validate

GM = {"nu": 1e-6, "T": 20, "tol": 1e-5}
METHODS: dict[str, dict[str, Any]] = {
    "fl-bgmd": {
        "algorithm": {"name": "fl-bgmd", "params": {"sync_every": 5}},
        "aggregator": {"name": "bgmd", "params": {"ratio": 0.1, **GM}},
    },
    "fedavg-gm": {
        "algorithm": {"name": "fedavg", "params": {"local_steps": 5}},
        "aggregator": {"name": "geometric-median", "params": GM},
    },
    "fedavg-mean": {
        "algorithm": {"name": "fedavg", "params": {"local_steps": 5}},
        "aggregator": {"name": "mean"},
    },
}
CORRUPTIONS: dict[str, tuple[int, dict[str, Any]]] = {
    "clean": (0, {}),
    "bitflip_20": (2, {"attack": {"name": "bit-flip", "params": {"scale": 100.0}}}),
    "additive_20": (2, {"attack": {"name": "additive-gaussian", "params": {"std": 10.0}}}),
}


def fl_bgmd_config(method: str, corruption: str) -> dict[str, Any]:
    """The configuration (a TOML-ready dict) of one run."""
    f, attack = CORRUPTIONS[corruption]
    config: dict[str, Any] = {
        "name": f"{method}_{corruption}",
        "data": {"name": "embedded-mnist", "partition": "iid"},
        "model": {"name": "lenet"},
        "training": {"rounds": 40, "batch_size": 32, "lr": 0.05, "seed": 0, "eval_every": 10},
        "workers": {"n": 10, "f": f},
        **METHODS[method],
        **attack,
    }
    validate(config)
    return config


def config_dir() -> Path:
    """The packaged ``configs/fl_bgmd`` folder."""
    return Path(__file__).resolve().parent.parent / "configs" / "fl_bgmd"


def write_configs(folder: Path) -> list[Path]:
    """Write every ``<method>_<corruption>.toml`` into ``folder``; returns their paths."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for corruption in CORRUPTIONS:
        for method in METHODS:
            path = folder / f"{method}_{corruption}.toml"
            header = (
                f"# FL-BGMD comparison, {method} under {corruption}: run with `robustfl run {path.name}`.\n"
                "# Written by robustfl.experiment.fl_bgmd.write_configs (a test keeps them equal).\n\n"
            )
            path.write_text(header + tomli_w.dumps(fl_bgmd_config(method, corruption)), encoding="utf-8")
            paths.append(path)
    return paths


def reproduce(
    out: Path,
    *,
    methods: list[str] | None = None,
    corruptions: list[str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the grid into ``out/<method>_<corruption>/``; ``out/fl_bgmd.csv`` / ``.md`` hold one row per
    corruption: each method's final test accuracy (%) and its median aggregation seconds per round."""
    import statistics

    from robustfl.experiment.config import ConfigError, load_config
    from robustfl.experiment.rundir import RunDir
    from robustfl.experiment.sweep import run_many
    from robustfl.experiment.table import write_tables

    methods = list(methods or METHODS)
    corruptions = list(corruptions or CORRUPTIONS)
    for name, chosen, known in (("method", methods, METHODS), ("corruption", corruptions, CORRUPTIONS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigError(f"unknown {name} {', '.join(unknown)}; choose from: {', '.join(known)}")
    cells = [(m, c) for c in corruptions for m in methods]
    configs = [load_config(config_dir() / f"{m}_{c}.toml", list(overrides)) for m, c in cells]
    dirs = [out / f"{m}_{c}" for m, c in cells]
    summaries = run_many(configs, dirs, workers=workers, on_done=on_done)
    rows: dict[str, dict[str, Any]] = {}
    for (m, c), d, summary in zip(cells, dirs, summaries, strict=True):
        acc = summary.get("final", {}).get("test_accuracy")
        text = "div" if summary.get("diverged") or acc is None else f"{100 * float(acc):.1f}"
        records = RunDir(d).read_metrics()
        agg = [r["seconds"]["aggregate"] / max(1, r["round"]) for r in records[-1:] if "seconds" in r]
        row = rows.setdefault(c, {"corruption": c})
        row[m] = text
        row[f"{m} agg s/round"] = f"{statistics.fmean(agg):.4f}" if agg else "-"
    table = list(rows.values())
    write_tables(table, ["corruption", *methods, *(f"{m} agg s/round" for m in methods)], out / "fl_bgmd")
    return table
