"""Edge-case attacks inside the simulator: the chapter's defences build, a short run reports metrics."""

import pytest
import torch

from robustfl.aggregators import Average, GeometricMedian, Krum, MultiKrum, TrimmedMean
from robustfl.attacks import ModelReplacement, PGDProjection
from robustfl.attacks.defences import NormDifferenceClipping, WeakDP
from robustfl.attacks.edge_case_experiment import DEFENCES, build_attack, build_defence, run_edge_case


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
    assert build_attack("black-box", 10, 0.3) is None
    pgd, mr = build_attack("pgd", 10, 0.3), build_attack("pgd-mr", 10, 0.3)
    assert isinstance(pgd, PGDProjection) and isinstance(mr, ModelReplacement)
    own = torch.full((1, 100), 5.0)
    for attack in (pgd, mr):
        sent = attack(torch.zeros(9, 100), 1, own=own)
        assert torch.linalg.vector_norm(sent).item() == pytest.approx(0.3, rel=1e-5)
    with pytest.raises(ValueError, match="attack mode"):
        build_attack("nope", 10, 0.3)


def test_one_round_in_the_simulator_reports_the_three_metrics() -> None:
    result = run_edge_case("pgd-mr", "ndc", rounds=1)
    assert 0.0 <= result.backdoor_accuracy <= 1.0
    assert 0.2 < result.main_accuracy <= 1.0  # one round of 5 local steps: well above chance (0.1)
    assert 0.0 < result.parity <= 1.0
