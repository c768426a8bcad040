"""The client-drift lr sweep: its grid, the choice of each method's best setting, its configs."""

from pathlib import Path

import pytest

from robustfl.experiment import client_drift as cd
from robustfl.experiment.config import ConfigError, load_config


def test_sweep_grid_gives_beta_only_to_mime_and_mimelite() -> None:
    settings = cd.sweep_settings(["fedavg", "mime"], [0.01, 0.05], [0.5, 0.9])
    assert [(s.algorithm, s.beta, s.lr) for s in settings] == [
        ("fedavg", None, 0.01),
        ("fedavg", None, 0.05),
        ("mime", 0.5, 0.01),
        ("mime", 0.5, 0.05),
        ("mime", 0.9, 0.01),
        ("mime", 0.9, 0.05),
    ]
    assert (
        settings[3].method == "mime (beta=0.5)" and settings[3].folder("clean") == "mime_beta0.5_lr0.05_clean"
    )
    assert len({s.folder("clean") for s in settings}) == len(settings)


def test_best_setting_skips_diverged_runs_and_keeps_the_first_of_ties() -> None:
    settings = cd.sweep_settings(["fedavg", "scaffold", "mime"], [0.01, 0.05], [0.5])
    scores = [80.0, 80.0, 40.0, None, None, None]
    best = cd.best_settings(settings, scores)
    assert best["fedavg"][0].lr == 0.01  # tie: the first (smaller) lr
    assert best["scaffold"][0].lr == 0.01 and best["scaffold"][1] == 40.0  # lr 0.05 diverged
    assert "mime" not in best  # every run diverged: no best


@pytest.mark.parametrize("algorithm", ["mimelite", "scaffold"])
def test_sweep_overrides_reach_the_packaged_config(algorithm: str) -> None:
    (setting,) = cd.sweep_settings([algorithm], [0.02], [0.5])
    config = load_config(cd.config_dir() / f"{algorithm}_byzantine.toml", setting.overrides())
    assert config.training.lr == 0.02
    assert config.algorithm is not None
    assert config.algorithm.params.get("beta") == (0.5 if algorithm == "mimelite" else None)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"algorithms": ["fedsgd"]}, "unknown algorithm fedsgd"),
        ({"lrs": [0.01, 0.0]}, "--lr: every value must be > 0"),
        ({"betas": [1.0]}, r"--beta: every value must be in \(0, 1\)"),
    ],
)
def test_sweep_rejects_bad_arguments_before_any_run(kw: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=match):
        cd.reproduce_sweep(tmp_path, **kw)
    assert not any(tmp_path.iterdir())


def test_cell_text() -> None:
    assert cd.cell_text(None, None) == "div"
    assert cd.cell_text(88.44, 86.25) == "88.4 / 86.2"
