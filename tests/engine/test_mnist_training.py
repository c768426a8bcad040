import pytest
import torch

from robustfl import aggregators, algorithms
from robustfl.data import load_dataset, partition
from robustfl.engine import Simulator
from robustfl.models import build_model
from robustfl.utils import make_generator


@pytest.mark.parametrize(
    ("model_name", "rule", "momentum", "lr", "rounds"),
    [("mlp", "median", 0.5, 0.2, 12), ("lenet", "mean", 0.0, 0.5, 20)],
)
def test_loss_decreases_on_embedded_mnist(
    model_name: str, rule: str, momentum: float, lr: float, rounds: int
) -> None:
    data = load_dataset("embedded-mnist")
    parts = partition(data.y_train, 8, "iid", generator=make_generator(0, "partition"))
    torch.manual_seed(0)
    model = build_model(model_name, data.input_shape, data.num_classes)
    sim = Simulator(
        model, data, parts, algorithms.get("sgd", momentum=momentum), aggregators.get(rule),
        batch_size=16, lr=lr, seed=0,
    )  # fmt: skip
    before = sim.evaluate()
    losses = [sim.step().loss for _ in range(rounds)]
    after = sim.evaluate()
    assert sim.vectorised
    assert after["test_loss"] < 0.9 * before["test_loss"]
    assert after["test_accuracy"] > before["test_accuracy"] + 0.15
    assert sum(losses[-3:]) < sum(losses[:3])
