"""ATOMO (seed 004 ch. 3): Algorithm 1's probabilities, unbiasedness, and the variance claims of §3.3-3.4."""

import math

import pytest
import torch

from robustfl import compressors as C
from robustfl.compressors import atomo_probabilities


def second_moment(lam: torch.Tensor, p: torch.Tensor) -> float:
    """Lemma 3.1 for orthonormal atoms: E||g_hat||^2 = sum lambda_i^2 / p_i."""
    nz = lam != 0
    return float((lam[nz] ** 2 / p[nz]).sum())


@pytest.mark.parametrize("budget", [0.5, 1.0, 2.5, 7.0, 19.0, 20.0])
def test_probabilities_sum_to_the_budget_and_lie_in_unit_interval(
    budget: float, rng: torch.Generator
) -> None:
    lam = torch.randn(6, 20, dtype=torch.float64, generator=rng) ** 3  # heavy tails: unbalanced
    p = atomo_probabilities(lam, budget)
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    torch.testing.assert_close(p.sum(1), torch.full((6,), budget, dtype=torch.float64))


def test_probabilities_match_a_hand_worked_case() -> None:
    # |lambda| = (8, 1, 1), s = 2: entry 1 is unbalanced (8 * 2 > 10) so p_1 = 1, then (1, 1) share 1
    p = atomo_probabilities(torch.tensor([[8.0, -1.0, 1.0]]), 2.0)
    torch.testing.assert_close(p, torch.tensor([[1.0, 0.5, 0.5]], dtype=torch.float64))


def test_zero_coefficients_get_zero_probability_and_budget_is_capped() -> None:
    p = atomo_probabilities(torch.tensor([[0.0, 3.0, 0.0, -1.0]]), 3.0)
    torch.testing.assert_close(p, torch.tensor([[0.0, 1.0, 0.0, 1.0]], dtype=torch.float64))
    p = atomo_probabilities(torch.tensor([[1.0, 2.0]]), 5.0)
    torch.testing.assert_close(p, torch.ones(1, 2, dtype=torch.float64))


def test_probabilities_minimise_the_second_moment_among_feasible_ones(rng: torch.Generator) -> None:
    """Theorem 3.6: no feasible p with the same budget has a smaller sum lambda^2 / p."""
    lam = torch.randn(30, dtype=torch.float64, generator=rng) ** 3
    for budget in (1.0, 3.0, 10.0):
        best = second_moment(lam, atomo_probabilities(lam[None], budget)[0])
        assert best <= second_moment(lam, torch.full((30,), budget / 30, dtype=torch.float64))
        for _ in range(200):  # random feasible p: a Dirichlet direction mixed with the optimum
            q = torch.distributions.Dirichlet(torch.ones(30, dtype=torch.float64)).sample() * budget
            q = q.clamp(max=1.0)
            q = q + (budget - q.sum()) * (1 - q) / (1 - q).sum()
            assert best <= second_moment(lam, q) * (1 + 1e-9)


def test_atomo_is_qsgd_and_terngrad_at_their_budgets(rng: torch.Generator) -> None:
    """§3.3: 1-bit QSGD is ATOMO with s = ||g||_1/||g||_2, TernGrad with s = ||g||_1/||g||_inf."""
    g = torch.randn(1, 25, dtype=torch.float64, generator=rng)
    l1, l2, linf = g.abs().sum(), g.norm(), g.abs().max()
    torch.testing.assert_close(atomo_probabilities(g, float(l1 / l2)), g.abs() / l2)
    torch.testing.assert_close(atomo_probabilities(g, float(l1 / linf)), g.abs() / linf)


def test_atomo_variance_is_at_most_qsgd_and_terngrad_at_equal_budget(rng: torch.Generator) -> None:
    """Measured by sampling: at the expected sparsity of 1-bit QSGD / TernGrad, ATOMO's error is no larger."""
    draws = 2000
    g = torch.randn(40, dtype=torch.float64, generator=rng) ** 3
    batch = g.expand(draws, -1).contiguous()
    for other, budget in (
        (C.QSGD(s=1), g.abs().sum() / g.norm()),
        (C.TernGrad(), g.abs().sum() / g.abs().max()),
    ):
        err_other = ((other(batch, rng) - g) ** 2).sum(1)
        err_atomo = ((C.ATOMO(budget=float(budget))(batch, rng) - g) ** 2).sum(1)
        se = math.sqrt((err_other.var() + err_atomo.var()) / draws)
        assert float(err_atomo.mean()) <= float(err_other.mean()) + 4 * se
    # and below budget where g is unbalanced, water-filling beats proportional sampling clipped at 1
    budget = 8.0
    prop = (g.abs() * budget / g.abs().sum()).clamp(max=1.0)
    assert second_moment(g, atomo_probabilities(g[None], budget)[0]) < second_moment(g, prop)


@pytest.mark.parametrize(
    "c", [C.ATOMO(budget=3.0), C.ATOMO(budget=1.0, atoms="svd", shapes=[(4, 5)])], ids=repr
)
def test_atomo_is_unbiased(c: C.Compressor, rng: torch.Generator) -> None:
    x = torch.randn(20, dtype=torch.float64, generator=rng)
    s = c(x.expand(2500, -1).contiguous(), rng)
    z = (s.mean(0) - x).abs() / (s.std(0) / math.sqrt(2500)).clamp_min(1e-12)
    assert float(z.max()) < 5


def test_atomo_expected_sparsity_equals_budget(rng: torch.Generator) -> None:
    x = torch.randn(50, dtype=torch.float64, generator=rng)
    out = C.ATOMO(budget=6.0)(x.expand(2000, -1).contiguous(), rng)
    kept = (out != 0).sum(1).double()
    assert abs(float(kept.mean()) - 6.0) < 5 * float(kept.std()) / math.sqrt(2000)


def test_spectral_atomo_beats_entrywise_on_low_rank_matrices(rng: torch.Generator) -> None:
    """Theorem 3.8: at equal communication (s entries vs s/(a+b) atoms) and (a+b)||X||_*^2 <= ||X||_11^2,
    spectral-ATOMO has the smaller second moment."""
    a, b = 12, 10
    m = torch.randn(a, 1, dtype=torch.float64, generator=rng) @ torch.randn(
        1, b, dtype=torch.float64, generator=rng
    )
    nuclear, l11 = torch.linalg.matrix_norm(m, "nuc"), m.abs().sum()
    assert (a + b) * nuclear**2 <= l11**2
    s = 22.0
    x = m.reshape(1, -1).expand(1000, -1).contiguous()
    err_svd = ((C.ATOMO(s / (a + b), "svd", shapes=[(a, b)])(x, rng) - x) ** 2).sum(1).mean()
    err_ent = ((C.ATOMO(s)(x, rng) - x) ** 2).sum(1).mean()
    assert float(err_svd) < float(err_ent)


def test_atomo_entry_bits_match_the_formula(rng: torch.Generator) -> None:
    x = torch.tensor([[10.0, 1.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0]])
    msg = C.ATOMO(budget=2.0).compress(x, rng)
    sat = msg.get_list("sat_idx")[0].numel()
    part = msg.get_list("part_idx")[0].numel()
    assert sat == 1  # 10 is unbalanced at s = 2
    assert msg.bits == 32 + 2 * 4 + sat * (3 + 32) + part * (3 + 1)


def test_atomo_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="budget must be > 0"):
        C.ATOMO(budget=0)
    with pytest.raises(ValueError, match="atoms must be"):
        C.ATOMO(atoms="fourier")
    with pytest.raises(ValueError, match="shapes must be"):
        C.ATOMO(atoms="svd")
    assert C.ATOMO(shapes=[(2, 2)]).shapes is None  # the layout a run hands every compressor: unused here


def test_atomo_variance_is_within_omega(rng: torch.Generator) -> None:
    x = torch.randn(30, dtype=torch.float64, generator=rng) ** 3
    for c in (C.ATOMO(budget=5.0), C.ATOMO(budget=1.0, atoms="svd", shapes=[(5, 6)])):
        err = ((c(x.expand(1500, -1).contiguous(), rng) - x) ** 2).sum(1).mean()
        assert float(err) <= c.omega(30) * float(x @ x) * 1.1
