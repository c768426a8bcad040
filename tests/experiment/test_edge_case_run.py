"""Edge-case attacks inside the simulator: the chapter's defences build, a short run reports metrics."""

import math

import pytest
import torch

from robustfl.aggregators import Average, GeometricMedian, Krum, MultiKrum, TrimmedMean
from robustfl.aggregators.defences import NormDifferenceClipping, WeakDP
from robustfl.attacks import ModelReplacement
from robustfl.experiment.edge_case import DEFENCES, build_attack, build_defence, run_edge_case


def test_defences_follow_the_chapter() -> None:
    built = {name: build_defence(name, n=10, f=1, threshold=2.0) for name in DEFENCES}
    assert isinstance(built["none"], Average)
    assert isinstance(built["ndc"], NormDifferenceClipping) and built["ndc"].threshold == 2.0
    assert isinstance(built["weak-dp"], WeakDP) and built["weak-dp"].sigma == 0.005
    assert isinstance(built["krum"], Krum)
    assert isinstance(built["multi-krum"], MultiKrum) and built["multi-krum"].m == 9
    rfa = built["rfa"]
    assert isinstance(rfa, GeometricMedian) and (rfa.nu, rfa.T) == (1e-5, 500)
    assert isinstance(built["trimmed-mean"], TrimmedMean) and built["trimmed-mean"].f == 1
    with pytest.raises(ValueError, match="unknown defence"):
        build_defence("nope", 10, 1, 2.0)


def test_attack_modes_bound_the_sent_update() -> None:
    assert build_attack("black-box", 10, 0.3) == (math.inf, None)
    assert build_attack("pgd", 10, 0.3) == (0.3, None)
    radius, mr = build_attack("pgd-mr", 10, 0.3)
    assert radius == pytest.approx(0.03) and isinstance(mr, ModelReplacement)
    sent = mr(torch.zeros(9, 100), 1, own=torch.full((1, 100), 0.003))  # an update of norm 0.03
    assert torch.linalg.vector_norm(sent).item() == pytest.approx(0.3, rel=1e-5)
    with pytest.raises(ValueError, match="attack mode"):
        build_attack("nope", 10, 0.3)


def test_one_round_in_the_simulator_reports_the_three_metrics() -> None:
    clean = run_edge_case("none", "ndc", rounds=1)
    assert 0.2 < clean.main_accuracy <= 1.0  # one round of 5 local steps: well above chance (0.1)
    assert 0.0 < clean.parity <= 1.0
    attacked = run_edge_case("pgd-mr", "ndc", rounds=1)  # two attackers scaled to the NDC threshold
    assert attacked.backdoor_accuracy > clean.backdoor_accuracy


def test_cli_prints_one_row_per_mode(monkeypatch) -> None:
    from typer.testing import CliRunner

    from robustfl.cli import app
    from robustfl.experiment import edge_case as edge_case_experiment
    from robustfl.experiment.edge_case import EdgeCaseResult

    def fake_grid(modes, defences, progress=None, **kwargs):
        assert kwargs["rounds"] == 3  # --quick
        return [EdgeCaseResult(m, d, 0.9, 0.25, 0.95) for m in modes for d in defences]

    monkeypatch.setattr(edge_case_experiment, "run_grid", fake_grid)
    result = CliRunner().invoke(app, ["edge-case", "--quick"])
    assert result.exit_code == 0, result.output
    assert "pgd-mr" in result.output and "0.900 / 0.250 / 0.95" in result.output
