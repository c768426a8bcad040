"""Worker momentum + centered clipping against time-coupled attacks (seed 002, "Byzantine-robust
training": history-free rules fail, "Fix: using history with momentum" + centered clipping holds;
Karimireddy, He and Jaggi, "Learning from history for Byzantine robust optimization", ICML 2021).

Grid: rule in {mean, median, krum, centered clipping} × worker momentum in {0, 0.9} × attack in {ALIE,
IPM}, over many rounds. Workers send ``m_i <- (1 - beta) g_i + beta m_i`` (``sgd`` with ``momentum``;
``beta = 0`` sends plain gradients). Centered clipping (``centered-clipping``) clips around its previous
output, the seed's "clipping centre = previous aggregate", one iteration (``L = 1``), radius ``tau``.

Setup (ours): the embedded MNIST sample, i.i.d. split, ``n = 20`` workers of which ``f = 4`` Byzantine,
a 784-100-10 MLP, batch 32, ``lr = 0.05``, 300 rounds. ALIE uses the paper's ``z`` for ``(n, f)``; IPM
sends ``-epsilon`` times the honest mean with ``epsilon = 0.1`` (the small-epsilon setting of the
"learning from history" paper, under which the mean still moves along the gradient but slowly and
robust rules that drop the honest tail are fooled). ``tau = 1`` for centered clipping is a first guess,
not tuned to the measured honest spread; change it with ``--set aggregator.params.tau=...``.
Configs: ``robustfl/configs/momentum_cc/<rule>_m<beta>_<attack>.toml``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustfl.experiment.config import validate

N, F = 20, 4
ROUNDS = 300
RULES: dict[str, dict[str, Any]] = {
    "mean": {"name": "mean"},
    "median": {"name": "median"},
    "krum": {"name": "krum", "params": {"f": F}},
    "cc": {"name": "centered-clipping", "params": {"tau": 1.0, "L": 1}},
}
MOMENTA = (0.0, 0.9)
ATTACKS: dict[str, dict[str, Any]] = {
    "alie": {"name": "alie"},
    "ipm": {"name": "ipm", "params": {"tau": 0.1}},
}


def cell(rule: str, momentum: float, attack: str) -> str:
    return f"{rule}_m{momentum:g}_{attack}"


def momentum_cc_config(rule: str, momentum: float, attack: str) -> dict[str, Any]:
    """The configuration (a TOML-ready dict) of one run."""
    config: dict[str, Any] = {
        "name": cell(rule, momentum, attack),
        "data": {"name": "embedded-mnist", "partition": "iid"},
        "model": {"name": "mlp", "params": {"hidden": [100]}},
        "training": {"rounds": ROUNDS, "batch_size": 32, "lr": 0.05, "seed": 0, "eval_every": 25},
        "workers": {"n": N, "f": F},
        "algorithm": {"name": "sgd", "params": {"momentum": momentum}},
        "aggregator": RULES[rule],
        "attack": ATTACKS[attack],
    }
    validate(config)
    return config


def config_dir() -> Path:
    """The packaged ``configs/momentum_cc`` folder."""
    return Path(__file__).resolve().parent.parent / "configs" / "momentum_cc"


def write_configs(folder: Path) -> list[Path]:
    """Write every ``<rule>_m<beta>_<attack>.toml`` into ``folder``; returns their paths."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for attack in ATTACKS:
        for rule in RULES:
            for momentum in MOMENTA:
                path = folder / f"{cell(rule, momentum, attack)}.toml"
                header = (
                    f"# Seed 002 momentum + centered clipping grid: run with `robustfl run {path.name}`.\n"
                    "# Written by robustfl.experiment.momentum_cc.write_configs (a test keeps them equal).\n\n"
                )
                path.write_text(
                    header + tomli_w.dumps(momentum_cc_config(rule, momentum, attack)), encoding="utf-8"
                )
                paths.append(path)
    return paths


def reproduce(
    out: Path,
    *,
    rules: list[str] | None = None,
    attacks: list[str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the grid into ``out/<cell>/``; write ``out/momentum_cc.csv`` / ``.md``. One row per (attack,
    rule): the final test accuracy (%) without and with worker momentum."""
    from robustfl.experiment.config import ConfigError, load_config
    from robustfl.experiment.sweep import run_many
    from robustfl.experiment.table import write_tables

    rules = list(rules or RULES)
    attacks = list(attacks or ATTACKS)
    for name, chosen, known in (("rule", rules, RULES), ("attack", attacks, ATTACKS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigError(f"unknown {name} {', '.join(unknown)}; choose from: {', '.join(known)}")
    cells = [(r, m, a) for a in attacks for r in rules for m in MOMENTA]
    configs = [load_config(config_dir() / f"{cell(*c)}.toml", list(overrides)) for c in cells]
    summaries = run_many(configs, [out / cell(*c) for c in cells], workers=workers, on_done=on_done)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (r, m, a), summary in zip(cells, summaries, strict=True):
        row = rows.setdefault((a, r), {"attack": a, "rule": r})
        acc = summary.get("final", {}).get("test_accuracy")
        text = "div" if summary.get("diverged") or acc is None else f"{100 * float(acc):.1f}"
        row[f"momentum {m:g}"] = text
    table = list(rows.values())
    write_tables(table, ["attack", "rule", *(f"momentum {m:g}" for m in MOMENTA)], out / "momentum_cc")
    return table
