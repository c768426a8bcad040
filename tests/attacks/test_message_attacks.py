"""Message attacks: shapes, defining properties, ByzFL's documented outputs, errors."""

import math

import pytest
import torch

from robustfl import attacks
from robustfl.attacks import (
    ATTACKS,
    AdditiveGaussian,
    ALittleIsEnough,
    BitFlip,
    Constant,
    Gaussian,
    Inf,
    InnerProductManipulation,
    LargeNumber,
    Mimic,
    NaN,
    OptimalALIE,
    OptimalIPM,
    SignFlipping,
)
from robustfl.attacks.optimal import line_search
from robustfl.attacks.time_coupled import alie_z

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
X4 = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0], [7.0, 9.0, 9.0], [0.0, 1.0, 2.0]], dtype=torch.float64)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_returns_f_rows_on_honest_dtype(name: str) -> None:
    attack = attacks.get(name)
    honest = torch.randn(6, 5, dtype=torch.float64, generator=gen())
    own = torch.randn(3, 5, generator=gen(1))
    out = attack(honest, 3, rng=gen(2), own=own)
    assert out.shape == (3, 5)
    assert out.dtype == torch.float64
    assert attack(honest, 0, rng=gen(2), own=own[:0]).shape == (0, 5)


def test_alie_matches_byzfl_example() -> None:
    out = ALittleIsEnough(tau=1.5)(X, 2)
    assert torch.allclose(out, torch.tensor([[8.5, 9.5, 10.5]] * 2))


def test_alie_negative_tau_matches_byzfl_on_other_data() -> None:
    # ByzFL ALittleIsEnough(-1.0) on X4 (unbiased std), printed by ByzFL 0.0.11.
    expected = torch.tensor([-0.16227766, 0.65602356, 1.94596207], dtype=torch.float64)
    assert torch.allclose(ALittleIsEnough(tau=-1.0)(X4, 1)[0], expected, atol=1e-7)


def test_alie_default_tau_is_the_papers_formula() -> None:
    # n = 20, f = 4: s = floor(11) - 4 = 7, z = Phi^-1(13/20).
    assert alie_z(20, 4) == pytest.approx(0.38532, abs=1e-4)
    honest = torch.randn(16, 7, generator=gen())
    out = ALittleIsEnough()(honest, 4)
    expected = honest.mean(0) + alie_z(20, 4) * honest.std(0)
    assert torch.allclose(out, expected.expand(4, -1))


def test_alie_formula_rejects_attacker_majority() -> None:
    with pytest.raises(ValueError, match="tau explicitly"):
        ALittleIsEnough()(torch.randn(2, 3), 3)
    with pytest.raises(ValueError, match="at least 2 honest"):
        ALittleIsEnough(tau=1.0)(torch.randn(1, 3), 1)


def test_ipm_matches_byzfl_example() -> None:
    out = InnerProductManipulation(tau=2.0)(X, 1)
    assert torch.equal(out, torch.tensor([[-8.0, -10.0, -12.0]]))


def test_sign_flipping_is_minus_honest_mean() -> None:
    assert torch.equal(SignFlipping()(X, 2), torch.tensor([[-4.0, -5.0, -6.0]] * 2))


def test_mimic_copies_one_honest_row_and_checks_index() -> None:
    assert torch.equal(Mimic(epsilon=1)(X, 2), X[[1, 1]])
    with pytest.raises(ValueError, match="epsilon=3"):
        Mimic(epsilon=3)(X, 1)


def test_bit_flip_scales_own_gradients() -> None:
    own = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    assert torch.equal(BitFlip()(X, 2, own=own), -100.0 * own)
    assert torch.equal(BitFlip(scale=1.0)(X, 2, own=own), -own)
    assert BitFlip.omniscient is False


def test_own_is_required_and_shape_checked() -> None:
    with pytest.raises(ValueError, match="pass own"):
        BitFlip()(X, 2)
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        BitFlip()(X, 2, own=torch.zeros(1, 3))
    # attacks that do not corrupt their own message ignore it
    assert torch.equal(SignFlipping()(X, 1, own=torch.zeros(1, 3)), SignFlipping()(X, 1))


def test_additive_gaussian_variance_and_reproducibility() -> None:
    own = torch.zeros(4, 20000)
    attack = AdditiveGaussian()
    out = attack(own[:2], 4, rng=gen(5), own=own)
    assert out.var().item() == pytest.approx(100.0, rel=0.03)  # N(0, 100): variance 100
    assert torch.equal(out, attack(own[:2], 4, rng=gen(5), own=own))
    assert not torch.equal(out, attack(own[:2], 4, rng=gen(6), own=own))


def test_large_number_and_constant() -> None:
    own = torch.tensor([[1e-3, -2e-3, 0.0]])
    assert torch.allclose(LargeNumber()(X, 1, own=own), own * 1e4)
    assert torch.equal(Constant(value=-5.0)(X, 2), torch.full((2, 3), -5.0))


def test_gaussian_rows_are_independent_and_seeded() -> None:
    out = Gaussian(mu=1.0, sigma=2.0)(torch.zeros(3, 50000), 2, rng=gen(3))
    assert out.mean().item() == pytest.approx(1.0, abs=0.03)
    assert out.std().item() == pytest.approx(2.0, rel=0.02)
    assert not torch.equal(out[0], out[1])
    assert torch.equal(out, Gaussian(mu=1.0, sigma=2.0)(torch.zeros(3, 50000), 2, rng=gen(3)))


def test_non_finite_injection() -> None:
    assert torch.isposinf(Inf()(X, 2)).all()
    assert torch.isnan(NaN()(X, 2)).all()


def test_optimal_attacks_match_byzfl_against_mean_and_median() -> None:
    # ByzFL 0.0.11 Optimal_* with pre_agg_list=[], f=1, on X4 (printed there).
    mean_rule = OptimalIPM()  # default aggregator: Average
    out = mean_rule(X4, 1)[0]
    assert torch.allclose(out, torch.tensor([-15728610.0, -22282197.5, -27525067.5], dtype=torch.float64))
    alie = OptimalALIE(agg=lambda x: x.quantile(0.5, dim=0))(X4, 1)[0]
    assert torch.allclose(alie, torch.tensor([34.6227766, 40.18976442, 38.29037934], dtype=torch.float64))
    ipm = OptimalIPM(agg=lambda x: x.quantile(0.5, dim=0))(X4, 1)[0]
    assert torch.equal(ipm, torch.zeros(3, dtype=torch.float64))


def test_line_search_finds_the_peak_of_a_concave_function() -> None:
    # ByzFL's search only steps forward from the best point, so it lands near, not on, the peak.
    best = line_search(lambda t: -((t - 7.3) ** 2), start=0.0, delta=1.0, ratio=0.8, evals=60)
    assert best == pytest.approx(7.3, abs=0.3)
    assert line_search(lambda t: -abs(t), start=0.0, delta=1.0, ratio=0.8, evals=10) == 0.0


def test_optimal_attack_does_more_damage_than_fixed_ipm_against_median() -> None:
    honest = torch.randn(16, 10, generator=gen()) + 1.0
    median = lambda x: x.quantile(0.5, dim=0)  # noqa: E731
    mean = honest.mean(0)

    def damage(byz: torch.Tensor) -> float:
        return float((median(torch.cat([honest, byz])) - mean).norm())

    assert damage(OptimalALIE(agg=median)(honest, 4)) >= damage(ALittleIsEnough(tau=1.0)(honest, 4))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BitFlip(scale=-1.0), "scale"),
        (lambda: AdditiveGaussian(std=-1.0), "std"),
        (lambda: Gaussian(sigma=float("nan")), "sigma"),
        (lambda: InnerProductManipulation(tau="2"), "tau"),
        (lambda: Mimic(epsilon=-1), "epsilon"),
        (lambda: OptimalIPM(ratio=0.3), "ratio"),
        (lambda: OptimalIPM(delta=0.0), "delta"),
        (lambda: OptimalIPM(evals=0), "evals"),
        (lambda: OptimalIPM(agg=3), "agg"),
    ],
)
def test_bad_parameters_raise_value_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_call_arguments() -> None:
    with pytest.raises(ValueError, match="f"):
        SignFlipping()(X, -1)
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        SignFlipping()(X[0], 1)
    with pytest.raises(ValueError, match="unknown attack"):
        attacks.get("nope")


def test_registry_names_follow_byzfl() -> None:
    for name in ["SignFlipping", "InnerProductManipulation", "ALittleIsEnough", "Mimic", "Inf", "Gaussian"]:
        assert name in ATTACKS
    assert isinstance(attacks.get("alie", tau=1.0), ALittleIsEnough)
    assert math.isclose(attacks.get("ipm", tau=3.0).tau, 3.0)


def test_primary_names_give_one_name_per_attack() -> None:
    names = ATTACKS.primary_names()
    assert "alie" in names and "alittleisenough" not in names
    assert len(names) == len({id(ATTACKS[n]) for n in ATTACKS.names()})


def test_optimal_attack_takes_an_aggregator_name() -> None:
    from robustfl.aggregators import Median

    assert isinstance(OptimalALIE(agg="median").agg, Median)
    with pytest.raises(ValueError, match="unknown aggregator"):
        OptimalIPM(agg="nope")


def test_optimal_attack_applies_pre_aggregators_like_byzfl() -> None:
    # a pre-aggregator that zeroes the Byzantine rows leaves nothing to optimise: tau stays at start
    def drop_last(x: torch.Tensor) -> torch.Tensor:
        return x[:-1]

    attack = OptimalIPM(agg=lambda x: x.mean(0), pre_agg_list=[drop_last], start=0.5)
    assert attack.best_tau(X, 1) == 0.5
    with pytest.raises(ValueError, match="pre_agg_list"):
        OptimalIPM(pre_agg_list=[3])


def test_optimal_attacks_reproduce_byzfls_documented_example() -> None:
    from robustfl.aggregators import NNM, Clipping, TrimmedMean

    x = X.double()

    def pipeline() -> dict:
        return {"agg": TrimmedMean(f=1), "pre_agg_list": [NNM(f=1), Clipping()]}

    # ByzFL's Optimal_InnerProductManipulation docstring: TrMean(f=1), [NNM(f=1), Clipping()], f=1
    ipm = OptimalIPM(**pipeline())(x, 1)[0]
    assert torch.allclose(ipm, torch.tensor([-2.74877907, -3.43597384, -4.1231686], dtype=torch.float64))
    # the same set-up for Optimal_ALittleIsEnough, printed by ByzFL 0.0.11
    alie = OptimalALIE(**pipeline())(x, 1)[0]
    assert torch.allclose(alie, torch.tensor([12.91985116, 13.91985116, 14.91985116], dtype=torch.float64))
