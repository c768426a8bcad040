import pytest
import torch
from fl_rounds import quad_grad, run_rounds

from robustfl import algorithms
from robustfl.aggregators import Average
from robustfl.algorithms import Cohort, DistributedSGD
from robustfl.algorithms.crsa import CRSA
from robustfl.algorithms.rsa import RSA

TARGETS = torch.tensor([[1.0, -2.0, 0.5], [2.0, -1.0, 0.0], [0.0, -3.0, 1.0], [1.5, -2.5, 0.5]])


def test_registered() -> None:
    assert isinstance(algorithms.get("rsa"), RSA) and isinstance(algorithms.get("c-rsa"), CRSA)
    assert not RSA.uses_aggregator and not CRSA.uses_aggregator


def test_rsa_one_step_by_hand() -> None:
    alg, lr = RSA(lam=0.1, mu=0.5), 0.2
    x0 = torch.tensor([1.0, 0.0, -1.0])
    xk = torch.tensor([0.5, 0.0, 2.0])
    xs = torch.full((1, 4, 3), 3.0)
    msg, state, loss, _ = alg.client_step({"params": x0}, xs, torch.zeros(1, 4), {"model": xk}, lr, quad_grad)
    assert torch.equal(msg, xk)  # eq. (7) uses the model held before the round's update
    expected = xk - lr * ((xk - 3.0) + 0.1 * torch.tensor([-1.0, 0.0, 1.0]))  # eq. (6)
    torch.testing.assert_close(state["model"], expected)
    assert loss == pytest.approx(0.5 * float(((xk - 3.0) ** 2).sum()))
    z = torch.tensor([[2.0, 0.0, -5.0], [0.0, 1.0, -1.0]])
    new, _, _ = alg.server_step(x0, z, Average(), {}, lr, 0, Cohort.of(2))
    signs = torch.tensor([-1.0, 0.0, 1.0]) + torch.tensor([1.0, -1.0, 0.0])
    torch.testing.assert_close(new, x0 - lr * (0.5 * x0 + 0.1 * signs))  # eq. (5)


def test_rsa_converges_to_the_penalised_optimum() -> None:
    # lambda larger than every |grad f_k| at the optimum: the l1 penalty is exact, consensus on
    # argmin sum_k f_k + mu/2 ||x||^2 = sum_k t_k / (K + mu)
    alg = RSA(lam=2.0, mu=0.1)
    x0, states, _ = run_rounds(alg, TARGETS, rounds=1500, lr=0.01)
    optimum = TARGETS.sum(0) / (4 + 0.1)
    assert torch.linalg.vector_norm(x0 - optimum) < 0.1
    for s in states:
        assert torch.linalg.vector_norm(s["model"] - optimum) < 0.1


def test_rsa_stays_bounded_where_the_mean_diverges() -> None:
    def large(scale: float):  # type: ignore[no-untyped-def]
        return lambda part, rows: -scale * (rows + 1.0)

    byz = torch.cat([TARGETS, torch.zeros(2, 3)])
    rsa = RSA(lam=2.0, mu=0.1)
    x_rsa, _, _ = run_rounds(rsa, byz, rounds=300, lr=0.01, f=2, attack=large(1e4))
    x_huge, _, _ = run_rounds(rsa, byz, rounds=300, lr=0.01, f=2, attack=large(1e8))
    x_mean, _, _ = run_rounds(DistributedSGD(), byz, rounds=300, lr=0.01, f=2, attack=large(1e4))
    honest_opt = TARGETS.sum(0) / 4.1
    # each message moves each coordinate by at most lr * lam: the bias does not grow with the attack
    torch.testing.assert_close(x_rsa, x_huge)
    assert torch.linalg.vector_norm(x_rsa - honest_opt) < 4.0
    assert not torch.linalg.vector_norm(x_mean - honest_opt) < 1e3  # diverged (huge, inf or nan)


def test_crsa_broadcast_and_message_bits_are_exact() -> None:
    alg = CRSA(gamma=0.25)
    shared = alg.broadcast(torch.arange(40.0), {}, 3)
    assert shared["values"].numel() == 10
    torch.testing.assert_close(shared["values"], shared["index"].float())
    assert alg.broadcast_bits(shared) == 32 * 10 + 63
    assert alg.message_bits({"update": torch.zeros(7, 10)}) == 2 * 7 * 10
    assert not torch.equal(alg.omega(40, 3), alg.omega(40, 4))  # a fresh mask each round


def test_crsa_one_step_by_hand() -> None:
    alg, lr = CRSA(gamma=0.5, lam=0.1, mu=0.5), 0.2
    x0 = torch.tensor([1.0, 0.0, -1.0, 4.0])
    xk = torch.tensor([0.5, 0.0, 2.0, 4.0])
    shared = alg.broadcast(x0, {}, 0)
    idx = shared["index"]
    xs = torch.full((1, 4, 4), 3.0)
    msg, state, _, _ = alg.client_step(shared, xs, torch.zeros(1, 4), {"model": xk}, lr, quad_grad)
    torch.testing.assert_close(msg, torch.sign(x0[idx] - xk[idx]))
    mask = torch.zeros(4)
    mask[idx] = 1.0
    expected = xk - lr * ((xk - 3.0) + 0.1 * mask * torch.sign(xk - x0))  # eq. (8)
    torch.testing.assert_close(state["model"], expected)
    byz = torch.tensor([[-7.0, 0.3]])  # any row is read as its signs on omega
    new, _, _ = alg.server_step(x0, torch.cat([msg[None], byz]), Average(), {}, lr, 0, Cohort.of(2, 1))
    votes = torch.zeros(4)
    votes[idx] = msg + torch.sign(byz[0])
    torch.testing.assert_close(new, x0 - lr * (0.5 * x0 + 0.1 * votes))  # eq. (9)


def test_crsa_with_gamma_one_equals_rsa() -> None:
    a, sa, _ = run_rounds(RSA(lam=0.3, mu=0.1), TARGETS, rounds=50, lr=0.05, noise=0.3)
    b, sb, _ = run_rounds(CRSA(gamma=1.0, lam=0.3, mu=0.1), TARGETS, rounds=50, lr=0.05, noise=0.3)
    torch.testing.assert_close(a, b)
    for x, y in zip(sa, sb, strict=True):
        torch.testing.assert_close(x["model"], y["model"])


def test_crsa_masked_sign_is_gamma_times_sign_in_expectation() -> None:
    alg = CRSA(gamma=0.3)
    v = torch.tensor([1.5, -0.2, 0.0, 3.0, -4.0, 0.7, -0.1, 2.0, 1.0, -1.0])
    total = torch.zeros(10)
    rounds = 2000
    for r in range(rounds):
        idx = alg.omega(10, r)
        total[idx] += torch.sign(v[idx])
    torch.testing.assert_close(total / rounds, 0.3 * torch.sign(v), atol=0.05, rtol=0)


@pytest.mark.parametrize("gamma", [0.0, 1.5, True])
def test_crsa_rejects_a_bad_gamma(gamma: float) -> None:
    with pytest.raises(ValueError, match="gamma"):
        CRSA(gamma=gamma)
