"""FLTrust in the engine: the server computes its own update on a root data set every round."""

import torch
from tiny_task import split, tiny_cnn, tiny_data

from robustfl import aggregators as A
from robustfl.algorithms import FedAvg
from robustfl.attacks import LargeNumber
from robustfl.engine import Simulator


def make(aggregator: A.Aggregator, **kw: object) -> Simulator:
    return Simulator(tiny_cnn(), tiny_data(), split(8), FedAvg(local_steps=2), aggregator, batch_size=8, lr=0.1,
                     seed=0, root_samples=30, **kw)  # fmt: skip


def test_fltrust_gets_the_servers_update_and_resists_a_large_number_attack() -> None:
    sim = make(A.get("fltrust"), num_byzantine=3, attack=LargeNumber())
    assert sim._root is not None and len(sim._root) == 30
    start = sim.evaluate()["test_loss"]
    for _ in range(8):
        sim.step()
    assert sim.evaluate()["test_loss"] < start
    mean = make(A.get("mean"), num_byzantine=3, attack=LargeNumber())
    mean.step()
    assert not bool(torch.isfinite(mean.params).all()) or mean.evaluate()["test_loss"] > 10 * start


def test_a_pipeline_hands_the_reference_to_its_fltrust_stage() -> None:
    sim = make(A.Pipeline(A.get("clipping", c=10.0), A.get("fltrust")))
    sim.step()  # without the reference FLTrust would raise
    assert make(A.get("median"))._root is None  # no root set when no rule needs it
