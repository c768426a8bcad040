"""Coded schemes in the engine: DRACO's repetition code trains exactly the attack-free model."""

import pytest
import torch
from tiny_task import split, tiny_cnn, tiny_data

from robustfl import coding
from robustfl.aggregators import Average
from robustfl.algorithms import DistributedSGD, FedAvg
from robustfl.attacks import Gaussian, SignFlipping
from robustfl.engine import Simulator
from robustfl.engine.participation import ByzantineSchedule


def make(**kw: object) -> Simulator:
    args: dict = dict(
        model=tiny_cnn(), dataset=tiny_data(), partitions=split(6), algorithm=DistributedSGD(),
        aggregator=Average(), batch_size=8, lr=0.1, seed=2,
        coding=coding.get("draco-repetition", workers=6, s=1),
    )  # fmt: skip
    args.update(kw)
    return Simulator(**args)


@pytest.mark.parametrize("attack", [SignFlipping(), Gaussian()], ids=repr)
def test_repetition_code_under_redrawn_adversaries_trains_the_attack_free_model(attack: object) -> None:
    clean = make()
    attacked = make(byzantine=ByzantineSchedule(f=1, ids="random", resample=True), attack=attack)
    for _ in range(3):
        clean.step()
        stats = attacked.step()
    assert torch.equal(clean.params, attacked.params)
    assert stats.metrics["redundancy"] == 3.0 and "decode" in stats.seconds


def test_coded_runs_refuse_what_they_cannot_encode() -> None:
    with pytest.raises(ValueError, match="every client in every round"):
        make(per_round=3)
    with pytest.raises(ValueError, match="use sgd without worker momentum"):
        make(algorithm=FedAvg(local_steps=2))
    with pytest.raises(ValueError, match="P=6 workers but there are 4 clients"):
        make(partitions=split(4))


def test_coding_from_a_config() -> None:
    from robustfl.experiment.build import build_run
    from robustfl.experiment.config import ConfigError, load_config

    base = [
        "model.name=mlp",
        "model.params={hidden = [8]}",
        "workers.n=6",
        "workers.f=1",
        "attack.name=sign-flip",
    ]
    run = build_run(load_config(None, [*base, "coding.name=detox", "coding.params={r = 3}"]))
    stats = run.step()
    assert stats.metrics["redundancy"] == 3.0
    with pytest.raises(ConfigError, match="coding.params: .*P=6"):
        build_run(load_config(None, [*base, "coding.name=draco-repetition", "coding.params={s = 3}"]))
