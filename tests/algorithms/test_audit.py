"""The issue's test list, for every algorithm at once (issue 12, "Tests").

* convergence to the known optimum on a convex problem without attackers: per-client quadratics
  ``1/2 ||x - t_i||^2`` of equal curvature, whose sum is minimised at the mean target; every update
  here is linear in the targets, so local steps, proximal terms, control variates and server momentum
  leave that fixed point in place;
* with attackers, the robust variant (the coordinate-wise median on every uploaded part) stays within a
  bound where the mean diverges;
* Mime's step with its SVRG correction at an anchor, by hand.

RSA and C-RSA (their own convergence, boundedness and equality tests: ``test_rsa.py``), FedAvg-PGD
(honest clients take FedAvg's steps: ``test_fedavg_pgd.py``), SCAFFOLD and
FL-BGMD under attack (``test_federated.py``) are covered where their algebra is.
"""

from typing import Any

import pytest
import torch
from fl_rounds import quad_grad, run_rounds
from torch import Tensor

from robustfl import algorithms
from robustfl.aggregators import Average, Median
from robustfl.algorithms import ALGORITHMS, Cohort, Mime

TARGETS = torch.tensor([[4.0, -2.0, 1.0], [-3.0, 1.0, 0.5], [1.0, 3.0, -1.0], [0.0, -4.0, 2.0]])

# name -> (constructor arguments, rounds, lr)
CONVERGE: dict[str, tuple[dict[str, Any], int, float]] = {
    "sgd": ({}, 400, 0.05),
    "fedavg": ({"local_steps": 3}, 200, 0.05),
    "fedprox": ({"local_steps": 3, "mu": 0.5}, 200, 0.05),
    "scaffold": ({"local_steps": 3}, 200, 0.05),
    "mime": ({"local_steps": 3, "beta": 0.5}, 300, 0.05),
    "mimelite": ({"local_steps": 3, "beta": 0.5}, 300, 0.05),
    "fl-bgmd": ({"sync_every": 3}, 200, 0.05),
}
COVERED_ELSEWHERE = {"rsa", "c-rsa", "fedavg-pgd", "masked", "gossip"}
"""fedavg-pgd: its honest clients take FedAvg's steps (``test_fedavg_pgd.py``), so it converges as FedAvg;
masked: FedAvg bit for bit with a full mask, and convergence when the mask covers the optimum's support
(``test_masked.py``); gossip: decentralised, no server step; its nodes reach the optimum of a convex
problem and clipped gossip stays bounded where plain gossip diverges (``tests/engine/test_gossip*.py``)."""


def test_every_registered_algorithm_is_audited() -> None:
    # an algorithm registered later without a convergence test fails here: add it to CONVERGE
    names = set(ALGORITHMS.primary_names()) - COVERED_ELSEWHERE
    assert names <= set(CONVERGE), sorted(names - set(CONVERGE))


@pytest.mark.parametrize("name", sorted(CONVERGE))
def test_converges_to_the_optimum_without_attackers(name: str) -> None:
    if name not in ALGORITHMS:
        pytest.skip(f"{name} is not registered")
    kw, rounds, lr = CONVERGE[name]
    x, _, _ = run_rounds(algorithms.get(name, **kw), TARGETS, rounds=rounds, lr=lr, noise=0.0)
    assert torch.linalg.vector_norm(x - TARGETS.mean(0)) < 1e-3


ROBUST = ["sgd", "fedavg", "fedprox", "mime", "mimelite"]


@pytest.mark.parametrize("name", ROBUST)
def test_median_stays_bounded_where_the_mean_diverges(name: str) -> None:
    def large(part: str, rows: Tensor) -> Tensor:
        return 1e3 * torch.ones_like(rows)

    kw = CONVERGE[name][0]
    targets = torch.cat([TARGETS, TARGETS + 0.1, torch.zeros(2, 3)])  # 8 clients, the last 2 Byzantine
    honest = targets[:6].mean(0)
    robust, _, _ = run_rounds(algorithms.get(name, **kw), targets, 100, 0.05, Median(), 2, large)
    mean, _, _ = run_rounds(algorithms.get(name, **kw), targets, 100, 0.05, Average(), 2, large)
    assert torch.linalg.vector_norm(robust - honest) < 3.0
    assert not torch.linalg.vector_norm(mean - honest) < 100.0  # diverged (huge, inf or nan)


def test_mime_step_with_the_svrg_correction_by_hand() -> None:
    alg, lr, beta = Mime(local_steps=2, beta=0.5), 0.1, 0.5
    x, t = torch.tensor([1.0, -1.0]), torch.tensor([3.0, 0.0])
    a, c, m = torch.tensor([0.0, 0.5]), torch.tensor([0.3, -0.2]), torch.tensor([0.4, 0.2])
    shared = {"params": x, "momentum": m, "anchor": a, "control": c, "ready": torch.tensor(1.0)}
    xs, ys = t.expand(2, 4, 2).clone(), torch.ones(2, 4)  # curvature 2: grad = 2 (y - t)
    msg, _, _, _ = alg.client_step(shared, xs, ys, {}, lr, quad_grad)
    d = lambda y: 2 * (y - t) - 2 * (a - t) + c  # noqa: E731  g_i(y) - g_i(a) + c
    y1 = x - lr * ((1 - beta) * d(x) + beta * m)
    y2 = y1 - lr * ((1 - beta) * d(y1) + beta * m)
    torch.testing.assert_close(msg["delta"], x - y2)
    torch.testing.assert_close(msg["grad"], 2 * (x - t))
    rows = {k: torch.stack([v, 3 * v]) for k, v in msg.items()}
    new, server, _ = alg.server_step(
        x, rows, {"delta": Average(), "grad": Average()}, alg.init_server_state(x), lr, 0, Cohort.of(2)
    )
    torch.testing.assert_close(new, x - 2 * msg["delta"])
    # the next round's anchor is this round's x, its control the aggregate of the gradients sent at x
    torch.testing.assert_close(server["anchor"], x)
    torch.testing.assert_close(server["control"], 2 * msg["grad"])
    torch.testing.assert_close(server["momentum"], (1 - beta) * 2 * msg["grad"])
    assert float(server["ready"]) == 1.0
