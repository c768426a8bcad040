"""``robustfl reproduce detox`` / ``draco``: the rows they run and what they measure (tiny runs)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustfl.cli import app
from robustfl.experiment import coded_runs


def test_detox_rows_pair_every_coded_rule_with_its_plain_version() -> None:
    configs = coded_runs.detox_configs(rounds=5, workers=45, f=5)
    coded = {k: c for k, c in configs.items() if "coding" in c}
    assert len(coded) == 5 and len(configs) == 10
    for name, config in coded.items():
        assert name.removeprefix("d-") in configs  # the plain row exists
        assert config["aggregator"]["name"] == "mean"  # the decoder replaces the rule
        assert config["coding"]["params"]["r"] == 3
    # §7.6.5: Multi-Krum on 7 votes admits f = 2, Bulyan on 15 votes f = 3
    assert configs["d-multi-krum/alie"]["coding"]["params"]["f"] == 2
    assert configs["d-bulyan/alie"]["coding"]["params"]["f"] == 3


def test_draco_adversaries_are_redrawn_every_round() -> None:
    for config in coded_runs.draco_configs(rounds=5).values():
        assert config["byzantine"] == {"ids": "random", "resample": True}


def test_draco_cost_split_and_cyclic_messages_are_2d_float64(tmp_path: Path) -> None:
    only = ["gm/constant", "repetition/constant", "cyclic/constant"]
    runs = coded_runs.reproduce_draco(tmp_path, rounds=2, workers=3, s=1, only=only)
    gm, rep, cyc = (runs[k] for k in only)
    assert rep.bits_per_worker == gm.bits_per_worker  # float32 gradients
    assert cyc.bits_per_worker == 4 * gm.bits_per_worker  # [Re z, Im z] in float64
    assert rep.redundancy == cyc.redundancy == 3.0 and gm.redundancy == 1.0
    assert gm.decode == 0.0 and rep.decode > 0 and cyc.decode > 0 and cyc.encode > 0
    table = (tmp_path / "draco.md").read_text(encoding="utf-8")
    assert all(f"| {k} |" in table for k in only)
    record = json.loads((tmp_path / "draco.json").read_text(encoding="utf-8"))
    assert set(record["runs"]) == set(only)


def test_detox_cli_runs_the_chosen_rows(tmp_path: Path) -> None:
    args = ["reproduce", "detox", "--rounds", "2", "--workers", "9", "--byzantine", "1"]
    result = CliRunner().invoke(
        app, [*args, "--run", "median/alie", "--run", "d-median/alie", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "detox.json").read_text(encoding="utf-8"))["runs"]
    assert record["d-median/alie"]["redundancy"] == 3.0 and record["d-median/alie"]["decode"] > 0
    assert record["median/alie"]["decode"] == 0.0


def test_bad_choices_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown run"):
        coded_runs.reproduce_detox(tmp_path, rounds=1, only=["krum/alie"])
    with pytest.raises(ValueError, match="targets must be"):
        coded_runs.reproduce_draco(tmp_path, rounds=1, targets=(1.5,))


def test_packaged_configs_match_the_generator_and_load(tmp_path: Path) -> None:
    from robustfl.experiment.config import load_config

    written = coded_runs.write_configs(tmp_path)
    packaged = sorted(coded_runs.config_folder().glob("*.toml"))
    assert [p.name for p in packaged] == sorted(p.name for p in written)
    for path in written:
        assert path.read_text(encoding="utf-8") == (coded_runs.config_folder() / path.name).read_text(
            encoding="utf-8"
        )
        assert load_config(path).training.rounds == 100


def test_data_dir_switches_both_studies_to_resnet18_on_cifar10(tmp_path: Path) -> None:
    from robustfl.experiment.coded_runs import detox_configs, draco_configs
    from robustfl.experiment.config import validate

    for configs in (detox_configs(rounds=2, data_dir=tmp_path), draco_configs(rounds=2, data_dir=tmp_path)):
        for raw in configs.values():
            config = validate(raw)
            assert (config.data.name, config.data.data_dir, config.model.name) == (
                "cifar10",
                str(tmp_path),
                "resnet18",
            )
