"""Attack matrix: the gradient problem, the error definition, and a quick-mode CLI smoke run."""

import math

import torch
from typer.testing import CliRunner

from robustfl.cli import app
from robustfl.experiment.attack_matrix import (
    GradientProblem,
    default_attacks,
    default_rules,
    format_error,
    honest_spread,
    run_attack_matrix,
)
from robustfl.utils import make_generator


def test_gradients_are_per_client_logreg_gradients() -> None:
    problem = GradientProblem.build(n_clients=10, seed=0, warm_steps=2)
    g = problem.gradients(make_generator(0, "t"))
    assert g.shape == (10, 785 * 10)
    # the softmax-regression gradient of each class column sums to zero over classes (bias row included)
    assert torch.allclose(g.view(10, 785, 10).sum(-1), torch.zeros(10, 785), atol=1e-5)
    assert torch.equal(g, problem.gradients(make_generator(0, "t")))


def test_honest_spread_is_mean_distance_to_mean() -> None:
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
    assert honest_spread(x) == 2.0


def test_matrix_errors_match_the_definition() -> None:
    result = run_attack_matrix(quick=True, rules=["average"], attacks=["large-number", "sign-flip", "inf"])
    assert result.f == 3 and result.n == 15  # quick mode: 15 clients
    large, flip, inf = result.errors[0]
    assert large > 100 and flip < 1 and math.isinf(inf)
    assert "average" in default_rules() and "alie" in default_attacks()
    assert [format_error(v) for v in (0.123, 2.4e5, math.inf, math.nan)] == ["0.12", "2.4e+05", "inf", "n/a"]


def test_cli_quick_run_prints_the_table_and_saves_the_heatmap(tmp_path) -> None:
    out = tmp_path / "img" / "matrix.png"
    result = CliRunner().invoke(app, ["attack-matrix", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "large-number" in result.output and "heatmap saved" in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(app, ["attack-matrix", "--quick", "--clients", "3", "--out", str(out)])
    assert bad.exit_code != 0 and "n_clients" in bad.output


def test_rules_that_cannot_be_measured_are_listed_with_the_reason() -> None:
    result = run_attack_matrix(
        quick=True, n_clients=10, rules=["average", "sign-majority", "bulyan"], attacks=["inf"]
    )
    assert result.rules == ["average"] and result.errors.shape == (1, 1)
    assert "signs" in result.notes["sign-majority"]
    assert "n=10" in result.notes["bulyan"]
