"""``robustfl reproduce personalise``: packaged configs, one training per seed, the table."""

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustfl.cli import app
from robustfl.experiment import personalise_runs as pr
from robustfl.experiment.config import ConfigError, load_config

SMALL = [
    "model.name=mlp",
    "model.params={hidden = [8]}",
    "workers.n=5",
    "data.partition=iid",
    "training.rounds=2",
    "training.eval_every=2",
    "personalise.steps=2",
]


def test_packaged_configs_equal_the_generator(tmp_path: Path) -> None:
    written = pr.write_configs(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in pr.config_dir().glob("*.toml"))
    for path in written:
        packaged = pr.config_dir() / path.name
        assert tomllib.loads(packaged.read_text()) == tomllib.loads(path.read_text()), path.name


def test_configs_differ_only_in_personalise() -> None:
    """reproduce trains once and personalises the same global model with every method."""
    dicts = [load_config(pr.config_dir() / f"{m}.toml").to_dict() for m in pr.METHODS]
    for d in dicts:
        assert d["data"]["partition"] == "dirichlet" and d["data"]["alpha"] == 0.1
        assert d["workers"]["n"] == 20 and d["data"]["client_test_fraction"] > 0
        d.pop("personalise"), d.pop("name")
    assert all(d == dicts[0] for d in dicts)


def test_reproduce_small(tmp_path: Path) -> None:
    rows = pr.reproduce(tmp_path, methods=["finetune", "weighted"], seeds=[3], overrides=SMALL)
    assert [r["model"] for r in rows] == ["global", "finetune", "weighted"]
    results = json.loads((tmp_path / "personalise.json").read_text())
    for name in ("global", "finetune", "weighted"):
        assert 0 <= results["3"][name]["worst10"] <= results["3"][name]["mean"] <= 1
        assert (
            rows[[r["model"] for r in rows].index(name)]["mean %"]
            == f"{100 * results['3'][name]['mean']:.1f}"
        )
    assert (tmp_path / "personalise.md").read_text().startswith("| model | mean % | worst 10% % |")
    # alpha = 0 is fine-tuning exactly: same minibatches, same steps, the same personalised models
    again = pr.personalise_from(tmp_path / "seed3", ["personalise.method=weighted", "personalise.alpha=0"])
    assert again["personal_accuracy_mean"] == results["3"]["finetune"]["mean"]
    assert again["client_accuracy_mean"] == results["3"]["global"]["mean"]
    with pytest.raises(ConfigError, match="unknown method ditto"):
        pr.reproduce(tmp_path, methods=["ditto"])


def test_cli_lists_the_command() -> None:
    result = CliRunner().invoke(app, ["reproduce", "personalise", "--help"])
    assert result.exit_code == 0 and "weighted-plain" in result.output


def test_cells() -> None:
    assert pr._cell([0.5]) == "50.0"
    assert pr._cell([0.5, 0.7]) == "60.0 ± 14.1"
