"""The packaged federated configs: generated ones equal their generator, every one builds and runs a round."""

import tomllib
from pathlib import Path

import pytest

from robustfl.experiment import client_drift, crsa, fl_bgmd, momentum_cc
from robustfl.experiment.build import build_simulator
from robustfl.experiment.config import load_config

FEDERATED = Path(crsa.__file__).resolve().parent.parent / "configs" / "federated"


def test_packaged_crsa_configs_equal_the_generator(tmp_path: Path) -> None:
    written = crsa.write_configs(tmp_path)
    assert len(written) == len(crsa.METHODS) * len(crsa.ATTACKS)
    for path in written:
        packaged = crsa.config_dir() / path.name
        assert tomllib.loads(packaged.read_text()) == tomllib.loads(path.read_text()), path.name


@pytest.mark.parametrize(
    "module", [momentum_cc, client_drift, fl_bgmd], ids=lambda m: m.__name__.rsplit(".", 1)[1]
)
def test_packaged_grid_configs_equal_the_generator(module, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = module.write_configs(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in module.config_dir().glob("*.toml"))
    for path in written:
        packaged = module.config_dir() / path.name
        assert tomllib.loads(packaged.read_text()) == tomllib.loads(path.read_text()), path.name


def test_crsa_configs_follow_the_paper_setup() -> None:
    cfg = crsa.crsa_config("c-rsa", "gaussian")
    assert cfg["workers"] == {"n": 10, "f": 2} and cfg["training"]["batch_size"] == 10
    assert cfg["data"]["partition"] == "crsa" and cfg["algorithm"]["params"]["gamma"] == 0.5
    assert crsa.crsa_config("mean", "sign-flip")["attack"] == {
        "name": "large-number",
        "params": {"scale": -1.0},
    }
    assert "attack" not in crsa.crsa_config("rsa", "clean")


@pytest.mark.parametrize(
    "path",
    [
        crsa.config_dir() / "c-rsa_sign-flip.toml",
        momentum_cc.config_dir() / "cc_m0.9_ipm.toml",
        client_drift.config_dir() / "mime_byzantine.toml",
        fl_bgmd.config_dir() / "fl-bgmd_bitflip_20.toml",
        crsa.config_dir() / "krum_gaussian.toml",
        *sorted(FEDERATED.glob("*.toml")),
    ],
    ids=lambda p: p.name,
)
def test_config_builds_and_runs_a_round(path: Path) -> None:
    sim = build_simulator(load_config(path, ["training.rounds=1"]))
    stats = sim.step()
    assert stats.bits_up > 0 and stats.loss == stats.loss
