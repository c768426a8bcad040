"""Personalisation client steps against their equations, on a quadratic where gradients are exact.

``f_i(x) = 1/2 ||x - mean(batch_i)||^2``: a batch's gradient at ``x`` is ``x - mean(batch)``, so every
step is checked by hand (Chayti et al., arXiv:2111.05968; the talk's two update rules).
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from robustfl.algorithms.personalise import (
    FineTune,
    WeightedAveraging,
    make_step,
    worst_fraction_mean,
)


def quadratic(params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    target = x.mean(0)
    return params - target, 0.5 * (params - target).pow(2).sum()


D, STEPS, B, N = 3, 4, 2, 5


def problem(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """Global model, the own batches [steps, B, d] and the shared batch of all N clients (own first)."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(D, generator=gen, dtype=torch.float64)
    batches = torch.randn(N, STEPS, B, D, generator=gen, dtype=torch.float64) + torch.arange(N).view(
        N, 1, 1, 1
    )
    own = batches[0]
    together = batches.transpose(0, 1).reshape(STEPS, N * B, D)
    shared = {"params": x0, "xc": together, "yc": torch.zeros(STEPS, N * B)}
    return x0, own, batches, shared


def run(
    step: FineTune | WeightedAveraging, shared: dict[str, Tensor], own: Tensor, lr: float = 0.3
) -> Tensor:
    state = step.init_client_state(shared["params"])
    out = step.client_step(shared, own, torch.zeros(STEPS, B), state, lr, quadratic)
    assert isinstance(out.message, Tensor)
    return out.message


def test_finetune_is_local_sgd_by_hand() -> None:
    x0, own, _, shared = problem()
    x = x0.clone()
    for t in range(STEPS):
        x = x - 0.3 * (x - own[t].mean(0))
    torch.testing.assert_close(run(FineTune(STEPS), shared, own), x)


@pytest.mark.parametrize("correction", [True, False])
def test_alpha_zero_is_the_local_model(correction: bool) -> None:
    _, own, _, shared = problem(1)
    local = run(FineTune(STEPS), shared, own)
    torch.testing.assert_close(
        run(WeightedAveraging(STEPS, alpha=0.0, correction=correction), shared, own), local
    )


def test_alpha_one_without_correction_steps_on_the_clients_mean() -> None:
    """alpha = 1, no correction: x <- x - lr (x - mean over the n clients' batches), the federated
    objective's gradient; it does not depend on which client personalises."""
    x0, own, batches, shared = problem(2)
    x = x0.clone()
    for t in range(STEPS):
        mean_grad = torch.stack([x - batches[i, t].mean(0) for i in range(N)]).mean(0)
        x = x - 0.3 * mean_grad
    step = WeightedAveraging(STEPS, alpha=1.0, correction=False)
    torch.testing.assert_close(run(step, shared, own), x)
    torch.testing.assert_close(run(step, shared, batches[3]), x)  # another client, same model


def test_bias_correction_matches_the_equation_by_hand() -> None:
    """x <- x - lr sum_i (alpha_i g_i + c_i), c_i = alpha_i m_i, m_i <- (1 - beta) m_i + beta (g_0 - g_i),
    with alpha_0 = 1 - alpha + alpha / n and alpha_i = alpha / n: each c_i kept separately here."""
    x0, own, batches, shared = problem(3)
    alpha, beta, lr = 0.6, 0.25, 0.3
    weights = torch.full((N,), alpha / N, dtype=torch.float64)
    weights[0] += 1 - alpha
    m = torch.zeros(N, D, dtype=torch.float64)
    x = x0.clone()
    for t in range(STEPS):
        g = torch.stack([x - batches[i, t].mean(0) for i in range(N)])  # g_i(x), g[0] = own
        m = (1 - beta) * m + beta * (g[0] - g)
        c = weights[:, None] * m
        x = x - lr * (weights[:, None] * g + c).sum(0)
    got = run(WeightedAveraging(STEPS, alpha=alpha, correction=True, beta=beta), shared, own, lr)
    torch.testing.assert_close(got, x)


def test_beta_one_is_local_sgd_again() -> None:
    _, own, _, shared = problem(4)
    local = run(FineTune(STEPS), shared, own)
    torch.testing.assert_close(run(WeightedAveraging(STEPS, alpha=0.9, beta=1.0), shared, own), local)


def test_server_keeps_the_global_model() -> None:
    params = torch.randn(D)
    out = FineTune(1).server_step(params, torch.randn(2, D), None, {}, 0.1, 0, None)  # type: ignore[arg-type]
    assert out.params is params


def test_worst_ten_percent_by_hand() -> None:
    acc = torch.tensor([0.9, 0.2, 0.8, 0.7, 0.1, 0.95, 0.6, 0.5, 0.85, 0.75] * 2)
    assert worst_fraction_mean(acc) == pytest.approx((0.1 + 0.1) / 2)  # 2 of 20
    assert worst_fraction_mean(torch.tensor([0.5, 0.3, 0.9])) == pytest.approx(0.3)  # ceil(0.3) = 1
    thirty = torch.arange(30, dtype=torch.float64) / 30  # 0.1 * 30 is 3.0000000000000004 in floats
    assert worst_fraction_mean(thirty) == pytest.approx((0 + 1 + 2) / 30 / 3)
    assert worst_fraction_mean(thirty, fraction=1.0) == pytest.approx(float(thirty.mean()))


@given(st.lists(st.floats(0, 1), min_size=1, max_size=60), st.floats(0.01, 1))
def test_worst_fraction_is_between_min_and_mean(values: list[float], fraction: float) -> None:
    v = torch.tensor(values, dtype=torch.float64)
    worst = worst_fraction_mean(v, fraction)
    assert float(v.min()) - 1e-12 <= worst <= float(v.mean()) + 1e-12
    k = max(1, math.ceil(fraction * len(values) - 1e-9))
    assert worst == pytest.approx(sum(sorted(values)[:k]) / k)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"beta": 0.0}, "beta must be > 0 with correction"),
        ({"beta": -0.1}, "beta must be"),
        ({"correction": "yes"}, "correction must be true or false"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"steps": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        WeightedAveraging(**args)  # type: ignore[arg-type]


def test_make_step() -> None:
    assert isinstance(make_step("finetune", 3, 0.5, True, 0.1), FineTune)
    step = make_step("weighted", 3, 0.2, False, 0.1)
    assert isinstance(step, WeightedAveraging) and step.alpha == 0.2 and not step.correction
    with pytest.raises(ValueError, match="method must be one of finetune, weighted"):
        make_step("ditto", 3, 0.5, True, 0.1)
    with pytest.raises(ValueError, match="values must be a non-empty"):
        worst_fraction_mean(torch.tensor([]))
