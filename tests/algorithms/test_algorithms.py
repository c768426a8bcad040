import pytest
import torch
from torch import Tensor

from robustfl import algorithms
from robustfl.aggregators import Average
from robustfl.algorithms import Cohort, DistributedSGD, FedAvg

TARGET = torch.tensor([1.0, -2.0, 3.0])


def quadratic_grad(params: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient of 0.5 * ||params - target - mean(x)||^2 (x shifts the optimum per batch)."""
    diff = params - TARGET - x.mean(dim=0)
    return diff, 0.5 * diff.pow(2).sum()


def batches(*shifts: float) -> Tensor:
    return torch.tensor(shifts).view(-1, 1, 1).expand(-1, 2, 3).clone()


def test_sgd_sends_the_gradient() -> None:
    params = torch.zeros(3)
    msg, state, loss, _ = DistributedSGD().client_step(
        {"params": params}, batches(0.0), torch.zeros(1, 2), {}, 0.1, quadratic_grad
    )
    assert torch.equal(msg, -TARGET) and state == {}
    assert loss == pytest.approx(0.5 * 14)


def test_worker_momentum_recursion() -> None:
    alg = DistributedSGD(momentum=0.75)
    params = torch.zeros(3)
    state = alg.init_client_state(params)
    assert torch.equal(state["momentum"], torch.zeros(3))
    shared = alg.broadcast(params, {}, 0)
    m1, state, _, _ = alg.client_step(shared, batches(0.0), torch.zeros(1, 2), state, 0.1, quadratic_grad)
    m2, state, _, _ = alg.client_step(shared, batches(1.0), torch.zeros(1, 2), state, 0.1, quadratic_grad)
    g1, g2 = -TARGET, -TARGET - 1.0
    torch.testing.assert_close(m1, 0.25 * g1)
    torch.testing.assert_close(m2, 0.25 * g2 + 0.75 * 0.25 * g1)
    torch.testing.assert_close(state["momentum"], m2)


def test_fedavg_sends_global_minus_local_after_local_steps() -> None:
    alg = FedAvg(local_steps=2, server_lr=0.5)
    params, lr = torch.zeros(3), 0.1
    delta, _, loss, _ = alg.client_step(
        {"params": params}, batches(0.0, 1.0), torch.zeros(2, 2), {}, lr, quadratic_grad
    )
    y1 = params - lr * (params - TARGET)
    y2 = y1 - lr * (y1 - TARGET - 1.0)
    torch.testing.assert_close(delta, params - y2)
    assert loss == pytest.approx(0.5 * 14)
    new, _, _ = alg.server_step(params, torch.stack([delta, 3 * delta]), Average(), {}, lr, 0, Cohort.of(2))
    torch.testing.assert_close(new, params - 0.5 * 2 * delta)


def test_sgd_server_step_is_a_step_along_the_aggregate() -> None:
    msgs = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    new, _, _ = DistributedSGD().server_step(torch.ones(2), msgs, Average(), {}, 0.5, 0, Cohort.of(2))
    torch.testing.assert_close(new, torch.tensor([0.0, -0.5]))


@pytest.mark.parametrize(
    ("name", "kw", "match"),
    [
        ("sgd", {"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ("sgd", {"momentum": -0.1}, "momentum must be >= 0"),
        ("fedavg", {"local_steps": 0}, "local_steps must be >= 1"),
        ("fedavg", {"server_lr": 0}, "server_lr must be > 0"),
        ("nope", {}, "unknown algorithm 'nope'"),
    ],
)
def test_bad_parameters(name: str, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        algorithms.get(name, **kw)


def test_registry_names() -> None:
    assert isinstance(algorithms.get("local-sgd", local_steps=2), FedAvg)
    assert {"sgd", "fedavg"} <= set(algorithms.ALGORITHMS.names())
