"""Training on the embedded MNIST sample makes progress, with margins wide enough for any x86-64 CPU.

LeNet (ReLU, PyTorch's default init) sits on a loss plateau near log(10) for a while; when it leaves it
depends on float details (a run of 20 plain-SGD rounds left it on one machine and not on another).
The LeNet case therefore trains FedAvg with 5 local momentum steps for 15 rounds, which leaves the
plateau well before the end on every seed we tried (test loss 0.97-1.9 after 10 rounds, 2.30 at
the start), and asserts only a 10% loss drop and a 15-point accuracy gain.
"""

import pytest
import torch

from robustfl import aggregators, algorithms
from robustfl.algorithms import ClientOptimizer
from robustfl.data import load_dataset, partition
from robustfl.engine import Simulator
from robustfl.models import build_model
from robustfl.utils import make_generator


@pytest.mark.parametrize(
    ("model_name", "rule", "algorithm", "lr", "rounds"),
    [
        ("mlp", "median", algorithms.DistributedSGD(momentum=0.5), 0.2, 12),
        (
            "lenet",
            "mean",
            algorithms.FedAvg(local_steps=5, client_optimizer=ClientOptimizer(momentum=0.9)),
            0.05,
            15,
        ),
    ],
    ids=["mlp-median-sgd", "lenet-mean-fedavg"],
)
def test_loss_decreases_on_embedded_mnist(
    model_name: str, rule: str, algorithm: algorithms.Algorithm, lr: float, rounds: int
) -> None:
    data = load_dataset("embedded-mnist")
    parts = partition(data.y_train, 8, "iid", generator=make_generator(0, "partition"))
    torch.manual_seed(0)
    model = build_model(model_name, data.input_shape, data.num_classes)
    sim = Simulator(model, data, parts, algorithm, aggregators.get(rule), batch_size=16, lr=lr, seed=0)
    before = sim.evaluate()
    losses = [sim.step().loss for _ in range(rounds)]
    after = sim.evaluate()
    assert sim.vectorised
    assert after["test_loss"] < 0.9 * before["test_loss"]
    assert after["test_accuracy"] > before["test_accuracy"] + 0.15
    assert sum(losses[-3:]) < sum(losses[:3])
