"""PGD inside local training: FedAvg for honest clients, the (shrinking) ball for the Byzantine ones."""

import pytest
import torch

from robustfl.aggregators import Average
from robustfl.algorithms import FedAvg
from robustfl.algorithms.fedavg_pgd import PGDFedAvg, project_towards
from robustfl.attacks import Attack
from robustfl.data import load_dataset, partition
from robustfl.engine import Simulator
from robustfl.models import build_model
from robustfl.utils import make_generator

TARGET = torch.linspace(-3.0, 3.0, 8)


def quadratic(params: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and loss of 0.5 ||params - TARGET||^2 (the batch is ignored)."""
    diff = params - TARGET
    return diff, 0.5 * (diff * diff).sum()


def step(algo: PGDFedAvg, byzantine: bool, round: int = 0) -> torch.Tensor:
    xs, ys = torch.zeros(5, 1, 1), torch.zeros(5, 1)
    state = {"byzantine": torch.tensor(byzantine)}
    shared = algo.broadcast(torch.zeros(8), {}, round)
    return algo.client_step(shared, xs, ys, state, 0.3, quadratic).message


def test_honest_clients_take_fedavgs_steps() -> None:
    pgd = PGDFedAvg(local_steps=5, project_every=2, radius=0.5)
    assert torch.equal(
        step(pgd, False),
        FedAvg(local_steps=5)
        .client_step({"params": torch.zeros(8)}, torch.zeros(5, 1, 1), torch.zeros(5, 1), {}, 0.3, quadratic)
        .message,
    )


@pytest.mark.parametrize("every", [1, 2, 10])
def test_armed_clients_stay_in_the_ball(every: int) -> None:
    free = step(PGDFedAvg(local_steps=5, project_every=every), True)
    message = step(PGDFedAvg(local_steps=5, project_every=every, radius=0.5), True)
    assert torch.linalg.vector_norm(message).item() == pytest.approx(0.5, rel=1e-6)
    assert torch.linalg.vector_norm(free) > 0.5
    assert torch.equal(step(PGDFedAvg(local_steps=5, radius=0.0), True), torch.zeros(8))


def test_budget_shrinks_per_round_and_is_not_counted_as_broadcast() -> None:
    pgd = PGDFedAvg(local_steps=5, radius=0.5, decay=0.998)
    assert pgd.budget(10) == pytest.approx(0.5 * 0.998**10)
    norm = torch.linalg.vector_norm(step(pgd, True, round=100)).item()
    assert norm == pytest.approx(0.5 * 0.998**100, rel=1e-6)
    assert pgd.broadcast_bits(pgd.broadcast(torch.zeros(8), {}, 0)) == 8 * 32


def test_project_towards_handles_zero_and_infinite_radius() -> None:
    c = torch.zeros(3)
    w = torch.tensor([3.0, 4.0, 0.0])
    assert torch.equal(project_towards(w, c, torch.tensor(float("inf"))), w)
    assert torch.equal(project_towards(c, c, torch.tensor(0.0)), c)
    assert torch.allclose(project_towards(w, c, torch.tensor(1.0)), torch.tensor([0.6, 0.8, 0.0]))


class Spy(Attack):
    """Sends the Byzantine workers' true updates and remembers them."""

    omniscient = False
    needs_own = True

    def _attack(self, honest, f, *, rng, round, own):
        self.seen = (honest.clone(), own.clone())
        return own


def test_simulator_attackers_send_updates_inside_the_ball() -> None:
    data = load_dataset("embedded-mnist")
    parts = partition(data.y_train, 5, "iid", generator=make_generator(0, "partition"))
    torch.manual_seed(0)
    spy = Spy()
    sim = Simulator(
        build_model("mlp", data.input_shape, data.num_classes),
        data,
        parts,
        algorithm=PGDFedAvg(local_steps=3, radius=0.01),
        aggregator=Average(),
        num_byzantine=2,
        attack=spy,
        batch_size=16,
        lr=0.05,
        seed=0,
    )
    sim.step()
    honest, own = spy.seen
    assert (torch.linalg.vector_norm(own, dim=1) <= 0.01 * (1 + 1e-5)).all()
    assert (torch.linalg.vector_norm(honest, dim=1) > 0.01).all()
