"""The attack matrix covers the new defences and attacks, and hands FLTrust its root-data update."""

import math

import torch

from robustfl.experiment.attack_matrix import (
    GradientProblem,
    default_attacks,
    default_rules,
    root_gradient,
    run_attack_matrix,
)
from robustfl.utils import make_generator

NEW_RULES = {"dnc", "fltrust", "signguard", "foolsgold", "flame", "clipped-clustering"}
NEW_ATTACKS = {"min-max", "min-sum", "fang-krum", "fang-trimmed-mean", "adaptive"}


def test_defaults_include_the_new_rules_and_attacks() -> None:
    assert set(default_rules()) >= NEW_RULES
    assert set(default_attacks()) >= NEW_ATTACKS


def test_root_gradient_is_a_logreg_gradient_on_100_examples() -> None:
    problem = GradientProblem.build(n_clients=10, seed=0, warm_steps=2)
    g0 = root_gradient(problem, make_generator(0, "root"))
    assert g0.shape == (7850,)
    assert torch.allclose(g0.view(785, 10).sum(-1), torch.zeros(785), atol=1e-5)
    assert torch.equal(g0, root_gradient(problem, make_generator(0, "root")))


def test_new_cells_are_measured() -> None:
    result = run_attack_matrix(quick=True, rules=["fltrust", "dnc"], attacks=sorted(NEW_ATTACKS))
    assert result.rules == ["fltrust", "dnc"] and not result.notes
    assert all(math.isfinite(v) for v in result.errors.ravel())
    assert (result.errors[0] < 1).all()  # FLTrust stays within the honest spread under every new attack


def test_cli_runs_a_chosen_subset(tmp_path) -> None:
    from typer.testing import CliRunner

    from robustfl.cli import app

    out = tmp_path / "m.png"
    args = [
        "attack-matrix",
        "--quick",
        "--clients",
        "6",
        "--rule",
        "fltrust",
        "--rule",
        "flame",
        "--attack",
        "min-sum",
    ]
    result = CliRunner().invoke(app, [*args, "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "fltrust" in result.output and "min-sum" in result.output and "krum" not in result.output
    bad = CliRunner().invoke(app, ["attack-matrix", "--quick", "--attack", "nope", "--out", str(out)])
    assert bad.exit_code != 0 and "unknown attack" in bad.output
