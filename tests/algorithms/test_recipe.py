"""The training recipe: client and server optimizers and lr schedules against their definitions."""

import math

import pytest
import torch

from robustfl.algorithms.optim import SERVER_OPTIMIZERS, ClientOptimizer, make_server_optimizer
from robustfl.algorithms.schedules import LR_SCHEDULES


def test_client_optimizer_matches_torch_sgd_with_momentum_nesterov_and_weight_decay() -> None:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=gen) for _ in range(4)]
    for nesterov in (False, True):
        p = torch.nn.Parameter(torch.randn(5, generator=torch.Generator().manual_seed(1)))
        ref = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=nesterov)
        opt = ClientOptimizer(momentum=0.9, weight_decay=1e-2, nesterov=nesterov)
        x, buf = p.detach().clone(), None
        for g in grads:
            p.grad = g.clone()
            ref.step()
            x, buf = opt.step(x, g, buf, 0.1)
        torch.testing.assert_close(x, p.detach())


def test_client_optimizer_clips_the_gradient_norm() -> None:
    g = torch.tensor([3.0, 4.0])
    torch.testing.assert_close(ClientOptimizer(clip_norm=1.0).gradient(g, torch.zeros(2)), g / 5)
    torch.testing.assert_close(ClientOptimizer(clip_norm=10.0).gradient(g, torch.zeros(2)), g)


def test_server_sgd_momentum_is_heavy_ball_on_the_aggregate() -> None:
    opt = make_server_optimizer("sgd", momentum=0.5)
    x, state = torch.zeros(2), opt.init_state(torch.zeros(2))
    x, state = opt.step(x, torch.ones(2), state, 1.0)
    x, state = opt.step(x, torch.ones(2), state, 1.0)
    torch.testing.assert_close(x, -torch.full((2,), 1.0 + 1.5))


@pytest.mark.parametrize("name", ["adam", "yogi", "adagrad"])
def test_fedopt_first_step_by_hand(name: str) -> None:
    """Reddi et al. 2021, Alg. 2 from m = 0, v = tau^2: first step -lr * m / (sqrt(v) + tau)."""
    opt = make_server_optimizer(name, beta1=0.9, beta2=0.99, tau=1e-3)
    u = torch.tensor([0.2, -0.4])
    x, _ = opt.step(torch.zeros(2), u, opt.init_state(torch.zeros(2)), 0.1)
    m = 0.1 * u
    v0 = torch.full((2,), 1e-6)
    v = {
        "adam": 0.99 * v0 + 0.01 * u * u,
        "yogi": v0 - 0.01 * u * u * torch.sign(v0 - u * u),
        "adagrad": v0 + u * u,
    }[name]
    torch.testing.assert_close(x, -0.1 * m / (v.sqrt() + 1e-3))
    assert set(SERVER_OPTIMIZERS.names()) >= {"sgd", "adam", "yogi", "adagrad"}


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("constant", {}, [1, 1, 1, 1]),
        ("step", {"milestones": [2, 3], "gamma": 0.1}, [1, 1, 0.1, 0.01]),
        ("exponential", {"gamma": 0.5}, [1, 0.5, 0.25, 0.125]),
        ("periodic-exponential", {"gamma": 0.5, "period": 2}, [1, 0.5, 1, 0.5]),
        (
            "cosine",
            {"period": 3},
            [
                1,
                (1 + math.cos(math.pi / 4)) / 2,
                (1 + math.cos(math.pi / 2)) / 2,
                (1 + math.cos(3 * math.pi / 4)) / 2,
            ],
        ),
    ],
)
def test_lr_schedules(name: str, params: dict, expected: list[float]) -> None:
    schedule = LR_SCHEDULES.get(name, **params)
    assert [schedule.factor(t) for t in range(4)] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(momentum=1.0), r"momentum must be in \[0, 1\)"),
        (dict(nesterov=True), "nesterov needs momentum > 0"),
        (dict(clip_norm=0.0), "clip_norm must be > 0"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
    ],
)
def test_bad_client_optimizer(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClientOptimizer(**kw)
