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

The lr sweep (:func:`reproduce_sweep`, ``robustfl reproduce client-drift --sweep-lr``): every method at
every ``lr`` of :data:`LRS` (Mime and MimeLite also at every ``beta`` of :data:`BETAS`) on the clean
scenario; each method's best setting is the one with the highest mean test accuracy over the last three
evaluations of the clean run (a diverged run never wins), and that setting alone then runs the
Byzantine scenario. One seed; the choice is made on test accuracy, so it is a tuning result, not a
held-out estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustfl.experiment.config import validate

N, PER_ROUND, F = 20, 10, 2
LRS = (0.01, 0.02, 0.05)
"""The client step sizes of the lr sweep."""
BETAS = (0.5, 0.9)
"""The server-momentum weights of the sweep for Mime and MimeLite."""
WITH_BETA = ("mime", "mimelite")
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


def last_accuracies(run_dir: Path, k: int = 3) -> list[float]:
    """The test accuracies of the last ``k`` evaluations of a run (fewer if it evaluated less)."""
    from robustfl.experiment.rundir import RunDir

    accs = [
        float(r["test_accuracy"])
        for r in RunDir(run_dir).read_metrics()
        if r.get("test_accuracy") is not None
    ]
    return accs[-k:]


def score(run_dir: Path, summary: dict[str, Any]) -> tuple[float | None, float | None]:
    """``(final, mean of the last three)`` test accuracy in %, ``(None, None)`` for a diverged run."""
    last = last_accuracies(run_dir)
    if summary.get("diverged") or not last:
        return None, None
    return 100 * last[-1], 100 * sum(last) / len(last)


def cell_text(final: float | None, last3: float | None) -> str:
    """``"final / last3"`` with one decimal, ``"div"`` for a diverged run."""
    return "div" if final is None or last3 is None else f"{final:.1f} / {last3:.1f}"


@dataclass(frozen=True)
class Setting:
    """One point of the sweep: an algorithm, its ``beta`` (Mime, MimeLite; else None) and the lr."""

    algorithm: str
    beta: float | None
    lr: float

    @property
    def method(self) -> str:
        """The row label: the algorithm, with its ``beta`` where it has one."""
        return self.algorithm if self.beta is None else f"{self.algorithm} (beta={self.beta:g})"

    def overrides(self) -> list[str]:
        beta = [] if self.beta is None else [f"algorithm.params.beta={self.beta}"]
        return [f"training.lr={self.lr}", *beta]

    def folder(self, scenario: str) -> str:
        beta = "" if self.beta is None else f"_beta{self.beta:g}"
        return f"{self.algorithm}{beta}_lr{self.lr:g}_{scenario}"


def sweep_settings(
    algorithms: list[str], lrs: tuple[float, ...] | list[float], betas: tuple[float, ...] | list[float]
) -> list[Setting]:
    """Every (algorithm, beta, lr) of the sweep, in table order."""
    return [
        Setting(a, b, lr)
        for a in algorithms
        for b in (list(betas) if a in WITH_BETA else [None])
        for lr in lrs
    ]


def best_settings(settings: list[Setting], scores: list[float | None]) -> dict[str, tuple[Setting, float]]:
    """Each algorithm's setting with the highest score (``None``: diverged, never chosen; the first of
    equal scores wins, i.e. the smaller lr / beta in sweep order)."""
    best: dict[str, tuple[Setting, float]] = {}
    for setting, value in zip(settings, scores, strict=True):
        if value is not None and (setting.algorithm not in best or value > best[setting.algorithm][1]):
            best[setting.algorithm] = (setting, value)
    return best


def reproduce_sweep(
    out: Path,
    *,
    algorithms: list[str] | None = None,
    lrs: tuple[float, ...] | list[float] = LRS,
    betas: tuple[float, ...] | list[float] = BETAS,
    overrides: list[str] | tuple[str, ...] = (),
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lr sweep (module docstring): clean runs into ``out/sweep/``, then each method's best setting
    under the Byzantine scenario into ``out/best/``. Writes ``out/client_drift_sweep.csv`` / ``.md``
    (one row per method, one column per lr: final / last-three accuracy %) and
    ``out/client_drift_best.csv`` / ``.md`` (the chosen lr and beta, clean and Byzantine accuracy).
    ``resume``: read finished runs back and continue partial ones (a sweep split over several calls)."""
    from robustfl.experiment.config import ConfigError, load_config
    from robustfl.experiment.sweep import run_many
    from robustfl.experiment.table import write_tables

    algorithms = list(algorithms or ALGORITHMS)
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        raise ConfigError(f"unknown algorithm {', '.join(unknown)}; choose from: {', '.join(ALGORITHMS)}")
    for name, values, upper in (("lr", lrs, None), ("beta", betas, 1.0)):
        if not values or any(not v > 0 or (upper is not None and not v < upper) for v in values):
            bound = "in (0, 1)" if upper else "> 0"
            raise ConfigError(f"--{name}: every value must be {bound}, got {list(values)}")
    settings = sweep_settings(algorithms, lrs, betas)
    dirs = [out / "sweep" / s.folder("clean") for s in settings]
    configs = [
        load_config(config_dir() / f"{s.algorithm}_clean.toml", [*overrides, *s.overrides()])
        for s in settings
    ]
    summaries = run_many(configs, dirs, workers=workers, on_done=on_done, resume=resume)
    scored = [score(d, summary) for d, summary in zip(dirs, summaries, strict=True)]
    table: dict[str, dict[str, Any]] = {}
    for s, (final, last3) in zip(settings, scored, strict=True):
        table.setdefault(s.method, {"method": s.method})[f"lr={s.lr:g}"] = cell_text(final, last3)
    sweep_rows = list(table.values())
    write_tables(sweep_rows, ["method", *(f"lr={lr:g}" for lr in lrs)], out / "client_drift_sweep")

    best = best_settings(settings, [last3 for _, last3 in scored])
    chosen = [best[a][0] for a in algorithms if a in best]
    byz_dirs = [out / "best" / s.folder("byzantine") for s in chosen]
    byz_configs = [
        load_config(config_dir() / f"{s.algorithm}_byzantine.toml", [*overrides, *s.overrides()])
        for s in chosen
    ]
    byz = run_many(byz_configs, byz_dirs, workers=workers, on_done=on_done, resume=resume)
    best_rows: list[dict[str, Any]] = []
    for a in algorithms:
        if a not in best:
            best_rows.append({"algorithm": a, "lr": None, "beta": None, "clean": "div (every lr)"})
            continue
        s = best[a][0]
        i = chosen.index(s)
        best_rows.append(
            {
                "algorithm": a,
                "lr": s.lr,
                "beta": s.beta,
                "clean": cell_text(*scored[settings.index(s)]),
                "byzantine": cell_text(*score(byz_dirs[i], byz[i])),
            }
        )
    write_tables(best_rows, ["algorithm", "lr", "beta", "clean", "byzantine"], out / "client_drift_best")
    return sweep_rows, best_rows
