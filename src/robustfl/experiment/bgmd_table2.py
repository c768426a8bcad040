"""Reproduction of seed 000's Table 2 (BGMD; Acharya et al. 2022): LeNet, i.i.d. split, four methods
under seven corruption settings.

Methods (seed 000, "Robust Gradient Aggregation"): SGD = mean, CMD = coordinate-wise median, GMD =
geometric median, BGMD = block geometric median with memory (Alg. 1–2) at ``k = 10% of d``. GM and BGMD
use the same GM oracle (smoothed Weiszfeld, ``nu = 1e-6``, at most ``T = 20`` steps, relative tolerance
``1e-5``): the seed's GM oracle is an ε-approximate one, ours stops at that tolerance. BGMD's memory is the
residual averaged with the block GM's Weiszfeld weights (``memory_weights = "robust"``); the literal row-mean
of Algorithm 1 (``"mean"``) lets the Byzantine rows' residuals into the memory, which is added unfiltered to
every row (docs/RESULTS.md shows what that does under bit flip).

Corruptions (seed 000, "Empirical Evidence"; ``ψ`` = fraction of the ``n = 10`` workers):

* clean: no Byzantine worker;
* bit flip ψ = 20%: each Byzantine worker sends ``-100 g`` of its own gradient;
* additive ψ = 20% / 40%: ``g + z``, ``z ~ N(0, 100)`` (100 read as the variance: ``std = 10``);
* impulse ψ = 20%: salt-and-pepper noise on 90% of the pixels of every sample of the Byzantine workers;
* backdoor ψ = 20% / 40%: every label of the Byzantine workers becomes the target class 0.

Reading of ψ for data corruption: the seed corrupts "ψ fraction of samples"; we corrupt *all* samples of
``ψ n`` workers, which is the same fraction of the data under the i.i.d. split and puts the corruption where a
robust aggregator can see it (one corrupted worker = one outlying message).

Hyper-parameters (ours, chosen so the 28 runs take minutes on 2 CPU cores, not the seed's): ``n = 10``
workers, batch 32 per worker, ``lr = 0.1`` (no momentum), 150 rounds, evaluation every 25 rounds, the
embedded MNIST sample (4000 train / 1000 test) by default, Fashion-MNIST when ``--data-dir`` holds its files.

The configs live as TOML files in ``robustfl/configs/bgmd_table2/<method>_<corruption>.toml`` (and the
repository's ``configs/``); :func:`table2_config` generates them and a test checks the files match it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustfl.experiment.config import ConfigError, validate

METHODS: dict[str, dict[str, Any]] = {
    "sgd": {"name": "mean"},
    "cmd": {"name": "median"},
    "gmd": {"name": "geometric-median", "params": {"nu": 1e-6, "T": 20, "tol": 1e-5}},
    "bgmd": {
        "name": "bgmd",
        "params": {"ratio": 0.1, "nu": 1e-6, "T": 20, "tol": 1e-5, "memory_weights": "robust"},
    },
}

# corruption -> (f out of n = 10, the attack or data_attack table)
CORRUPTIONS: dict[str, tuple[int, dict[str, Any]]] = {
    "clean": (0, {}),
    "bitflip_20": (2, {"attack": {"name": "bit-flip", "params": {"scale": 100.0}}}),
    "bitflip_40": (4, {"attack": {"name": "bit-flip", "params": {"scale": 100.0}}}),
    "additive_20": (2, {"attack": {"name": "additive-gaussian", "params": {"std": 10.0}}}),
    "additive_40": (4, {"attack": {"name": "additive-gaussian", "params": {"std": 10.0}}}),
    "feature_additive_20": (
        2,
        {"data_attack": {"name": "feature-noise", "params": {"fraction": 1.0, "mean": 100.0, "std": 1.0}}},
    ),
    "feature_additive_40": (
        4,
        {"data_attack": {"name": "feature-noise", "params": {"fraction": 1.0, "mean": 100.0, "std": 1.0}}},
    ),
    "impulse_20": (
        2,
        {"data_attack": {"name": "impulse", "params": {"fraction": 1.0, "pixel_fraction": 0.9}}},
    ),
    "impulse_40": (
        4,
        {"data_attack": {"name": "impulse", "params": {"fraction": 1.0, "pixel_fraction": 0.9}}},
    ),
    "backdoor_20": (2, {"data_attack": {"name": "backdoor", "params": {"fraction": 1.0, "target": 0}}}),
    "backdoor_40": (4, {"data_attack": {"name": "backdoor", "params": {"fraction": 1.0, "target": 0}}}),
}

# The heterogeneous block (seed 000: ResNet-18 / CIFAR-10, heterogeneous): the same corruptions on a
# Dirichlet(HETERO_ALPHA) split. Packaged configs use the small stand-in (LeNet, embedded MNIST);
# ``reproduce(..., cifar_dir=...)`` swaps in ResNet-18 on the CIFAR-10 files.
HETERO_ALPHA = 0.5
HETERO = {
    f"het_{c}": CORRUPTIONS[c] for c in ("clean", "bitflip_20", "bitflip_40", "additive_20", "additive_40")
}
ALL_ROWS: dict[str, tuple[int, dict[str, Any]]] = {**CORRUPTIONS, **HETERO}

# Seed 000, Table 2: the published test accuracies (%) of the paper, not our results; None = the paper
# reports divergence ("-"). Rows without prefix: "LeNet - Fashion MNIST (homogeneous)"; het_*: "ResNet18 -
# CIFAR10 (heterogeneous)".
SEED_TABLE: dict[str, dict[str, float | None]] = {
    "clean": {"sgd": 89.39, "cmd": 83.82, "bgmd": 89.25, "gmd": 88.98},
    "bitflip_20": {"sgd": None, "cmd": 84.20, "bgmd": 88.42, "gmd": 88.07},
    "bitflip_40": {"sgd": None, "cmd": 82.33, "bgmd": 85.67, "gmd": 85.57},
    "additive_20": {"sgd": None, "cmd": 72.55, "bgmd": 87.87, "gmd": 87.24},
    "additive_40": {"sgd": None, "cmd": 41.04, "bgmd": 88.29, "gmd": 83.89},
    "feature_additive_20": {"sgd": None, "cmd": 82.38, "bgmd": 86.76, "gmd": 86.63},
    "feature_additive_40": {"sgd": None, "cmd": 78.54, "bgmd": 82.27, "gmd": 81.23},
    "impulse_20": {"sgd": 79.18, "cmd": 82.59, "bgmd": 86.91, "gmd": 86.23},
    "impulse_40": {"sgd": None, "cmd": 78.03, "bgmd": 82.11, "gmd": 81.41},
    "backdoor_20": {"sgd": 86.99, "cmd": 76.38, "bgmd": 88.97, "gmd": 88.26},
    "backdoor_40": {"sgd": 73.01, "cmd": 60.85, "bgmd": 84.69, "gmd": 81.32},
    "het_clean": {"sgd": 82.29, "cmd": 85.50, "bgmd": 84.82, "gmd": 85.65},
    "het_bitflip_20": {"sgd": None, "cmd": 80.87, "bgmd": 87.56, "gmd": 88.07},
    "het_bitflip_40": {"sgd": None, "cmd": 77.41, "bgmd": 82.66, "gmd": 80.81},
    "het_additive_20": {"sgd": 20.7, "cmd": 54.75, "bgmd": 83.84, "gmd": 82.40},
    "het_additive_40": {"sgd": None, "cmd": 23.35, "bgmd": 82.79, "gmd": 79.46},
}

READINGS = ("workers", "samples")

ROUNDS = 150


def table2_config(method: str, corruption: str) -> dict[str, Any]:
    """The configuration (a TOML-ready dict) of one cell of the table."""
    f, attack = ALL_ROWS[corruption]
    data: dict[str, Any] = {"name": "embedded-mnist", "partition": "iid"}
    if corruption in HETERO:
        data = {**data, "partition": "dirichlet", "alpha": HETERO_ALPHA}
    config: dict[str, Any] = {
        "name": f"{method}_{corruption}",
        "data": data,
        "model": {"name": "lenet"},
        "training": {
            "algorithm": "sgd",
            "rounds": ROUNDS,
            "batch_size": 32,
            "lr": 0.1,
            "seed": 0,
            "eval_every": 25,
        },
        "workers": {"n": 10, "f": f},
        "aggregator": METHODS[method],
        **attack,
    }
    validate(config)
    return config


def config_dir() -> Path:
    """The packaged ``configs/bgmd_table2`` folder."""
    return Path(__file__).resolve().parent.parent / "configs" / "bgmd_table2"


def write_configs(folder: Path) -> list[Path]:
    """Write all 64 TOML files into ``folder``; returns their paths."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for corruption in ALL_ROWS:
        for method in METHODS:
            path = folder / f"{method}_{corruption}.toml"
            header = (
                f"# Seed 000 Table 2, {method.upper()} under {corruption}: run with `robustfl run {path.name}`.\n"
                "# Written by robustfl.experiment.bgmd_table2.write_configs (a test keeps them equal).\n\n"
            )
            path.write_text(header + tomli_w.dumps(table2_config(method, corruption)), encoding="utf-8")
            paths.append(path)
    return paths


SAMPLES_PER_STEP = 320  # 10 workers x batch 32: the gradient rows of one step cover the same samples


def reading_overrides(corruption: str, reading: str, group: int = 1) -> list[str]:
    """The config changes of a reading of the seed's ``G_t``.

    ``"workers"``: ``G_t``'s rows are the 10 workers' minibatch gradients (the packaged configs).
    ``"samples"``: Algorithm 1 of the seed as written: ``G_t in R^{b x d}`` holds the gradients of the
    ``b = 320 / group`` samples (``group = 1``) or groups of ``group`` samples of one step, a
    ``psi`` fraction of them corrupted. The engine computes them as ``b`` clients with batch size
    ``group`` (vectorised with ``torch.func.vmap``); a data corruption poisons ``psi`` of the clients'
    samples (the same share of the data), a gradient corruption ``psi`` of the rows.
    """
    if reading not in READINGS:
        raise ConfigError(f"config error: unknown reading {reading!r}; choose one of: {', '.join(READINGS)}")
    if reading == "workers":
        return []
    if not (isinstance(group, int) and group >= 1 and SAMPLES_PER_STEP % group == 0):
        raise ConfigError(f"config error: group must divide {SAMPLES_PER_STEP} (got {group!r})")
    rows = SAMPLES_PER_STEP // group
    f = round(ALL_ROWS[corruption][0] / 10 * rows)
    return [f"workers.n={rows}", f"workers.f={f}", f"training.batch_size={group}"]


def hetero_overrides(cifar_dir: Path) -> list[str]:
    """The seed's heterogeneous block as it ran: ResNet-18 on CIFAR-10 from ``cifar_dir``."""
    return ["data.name=cifar10", f"data.data_dir={str(cifar_dir)!r}", "model.name=resnet18"]


def collapsed(row: dict[str, Any], method: str) -> bool:
    """Every seed diverged, or a mean final accuracy below 50% (what we call 'collapsed')."""
    acc = row.get(f"{method}_ours")
    runs = row.get(f"{method}_runs", 1)
    return row.get(f"{method}_diverged", 0) >= runs or acc is None or acc < 50.0


def shape_checks(rows: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None]]:
    """The expected shape of the table (issue 7) as (statement, holds); None = the row was not run."""

    def acc(corruption: str, method: str) -> float | None:
        value = rows.get(corruption, {}).get(f"{method}_ours")
        return None if value is None else float(value)

    checks: list[tuple[str, bool | None]] = []
    s, b = acc("clean", "sgd"), acc("clean", "bgmd")
    checks.append(
        ("clean: BGMD within 1 point of SGD", abs(b - s) <= 1.0 if s is not None and b is not None else None)
    )
    for corruption in ("bitflip_20", "additive_20", "additive_40"):
        present = corruption in rows and "sgd_ours" in rows[corruption]
        checks.append(
            (
                f"{corruption}: SGD diverges or collapses",
                collapsed(rows[corruption], "sgd") if present else None,
            )
        )
    b, g, c = acc("additive_40", "bgmd"), acc("additive_40", "gmd"), acc("additive_40", "cmd")
    checks.append(("additive_40: BGMD >= GMD - 1", b >= g - 1.0 if b is not None and g is not None else None))
    checks.append(
        ("additive_40: BGMD >> CMD (by 5+ points)", b >= c + 5.0 if b is not None and c is not None else None)
    )
    b, s = acc("backdoor_40", "bgmd"), acc("backdoor_40", "sgd")
    checks.append(("backdoor_40: BGMD > SGD", b > s if b is not None and s is not None else None))
    return checks


def cell_text(row: dict[str, Any], method: str) -> str:
    """``ours (seed)`` in percent: our mean over seeds ``± std`` (2+ seeds), ``div`` when every seed diverged
    (``k div`` appended when some did); ``-`` in the paper's column = it reports divergence."""
    paper = f"({_pct(row.get(f'{method}_seed'))})"
    diverged, runs = row.get(f"{method}_diverged", 0), row.get(f"{method}_runs", 1)
    if diverged >= runs:
        return f"div {paper}"
    std = row.get(f"{method}_std")
    ours = _pct(row.get(f"{method}_ours")) + ("" if std is None else f" ± {std:.2f}")
    return f"{ours}{f' ({diverged} div)' if diverged else ''} {paper}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def reproduce(
    out: Path,
    *,
    methods: list[str] | None = None,
    corruptions: list[str] | None = None,
    seeds: list[int] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    workers: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    reading: str = "workers",
    group: int = 1,
    cifar_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the chosen cells from the packaged TOML files (plus ``overrides``), once per seed, into
    ``out/<method>_<corruption>/seed<s>/``.

    ``reading = "samples"`` aggregates per-sample (``group = 1``) or per-group gradients: see
    :func:`reading_overrides`. ``cifar_dir`` runs the ``het_*`` rows as the seed did (ResNet-18 on the
    CIFAR-10 files there) instead of the stand-in.

    Returns one row per corruption: ``<method>_ours`` (mean final test accuracy over the seeds, %),
    ``<method>_std`` (sample std, ``None`` for one seed), ``<method>_diverged`` (how many seeds diverged),
    ``<method>_runs`` and ``<method>_seed`` (the paper's number); also writes ``out/table2.csv`` / ``.md``.
    """
    import statistics

    from robustfl.experiment.config import load_config
    from robustfl.experiment.sweep import run_many
    from robustfl.experiment.table import write_tables

    methods = list(methods or METHODS)
    corruptions = list(corruptions or ALL_ROWS)
    seeds = list(seeds or [0])
    for name, chosen, known in (("method", methods, METHODS), ("corruption", corruptions, ALL_ROWS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigError(f"unknown {name} {', '.join(unknown)}; choose from: {', '.join(known)}")
    cells = [(m, c, s) for c in corruptions for m in methods for s in seeds]
    configs = [
        load_config(
            config_dir() / f"{m}_{c}.toml",
            [
                *reading_overrides(c, reading, group),
                *(hetero_overrides(cifar_dir) if c in HETERO and cifar_dir is not None else []),
                *overrides,
                f"training.seed={s}",
            ],
        )
        for m, c, s in cells
    ]
    dirs = [out / f"{m}_{c}" / f"seed{s}" for m, c, s in cells]
    summaries = run_many(configs, dirs, workers=workers, on_done=on_done)
    accs: dict[tuple[str, str], list[float]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for (m, c, _), summary in zip(cells, summaries, strict=True):
        row = rows.setdefault(c, {"corruption": c, "f": ALL_ROWS[c][0]})
        acc = summary.get("final", {}).get("test_accuracy")
        accs.setdefault((m, c), []).append(0.0 if acc is None else 100.0 * float(acc))
        row[f"{m}_diverged"] = row.get(f"{m}_diverged", 0) + bool(summary.get("diverged"))
        row[f"{m}_runs"] = row.get(f"{m}_runs", 0) + 1
        row[f"{m}_seed"] = SEED_TABLE[c][m]
    for (m, c), values in accs.items():
        rows[c][f"{m}_ours"] = round(statistics.fmean(values), 2)
        rows[c][f"{m}_std"] = round(statistics.stdev(values), 2) if len(values) > 1 else None
    table = [{**r, **{m.upper(): cell_text(r, m) for m in methods}} for r in rows.values()]
    write_tables(table, ["corruption", "f", *(m.upper() for m in methods)], out / "table2")
    return rows
